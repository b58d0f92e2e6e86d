// The operations wall: sign in, then the map, the live alert queue, cameras, KPIs, radio and the
// clock, all fed by the HTTP API and the /ws live stream. Each part lives in its own module; this
// one only wires them together.
import "./strings.js";
import { api, bindLoginForm, currentUser, keepSessionFresh, logout, onSessionChange, session } from "../common/api.js";
import { showConnection } from "../common/dom.js";
import { applyTranslations, bindLangToggle, onLangChange } from "../common/i18n.js";
import { connectLive } from "../common/live.js";
import { onAlertsChange, rerender, resetAlerts, setOpenHandler, upsertAlert } from "./alerts.js";
import { cameraPresence, rerenderCameras, setCameras, startCameras } from "./cameras.js";
import { startClock } from "./clock.js";
import { drawerAlertId, initDrawer, openDrawer } from "./drawer.js";
import { devicesSample, rerenderKpis, startKpis } from "./kpi.js";
import { initMap, refreshMap, setDevices } from "./map.js";
import { incidentEvent, initIncidents, refreshIncidents } from "./incidents.js";
import { initBroadcastHistory } from "./broadcast-history.js";
import { initRadio, refreshRadio } from "./radio.js";
import { bindMute, unlockAudio } from "./sound.js";
import { refreshWarnings } from "./warnings.js";
import { loadUnits, unitName, unitsGeoJSON } from "./units.js";

const DEVICES_EVERY_MS = 30_000;
let live = null;

async function loadDevices() {
  try {
    const devices = await api("/api/devices");
    setDevices(devices);
    setCameras(devices);
    devicesSample(devices);
  } catch (err) {
    console.warn("devices:", err.message);
  }
}

function onLiveEvent(event, { phase }) {
  document.body.dataset.lastEvent = event.type;
  if (event.topic === "alert") {
    const data = event.data.unit_id === undefined ? { ...event.data, unit_id: event.unit_id } : event.data;
    const alert = upsertAlert(data, { at: event.at, phase });
    if (drawerAlertId() === alert.id && phase === "live") openDrawer(alert.id, { keepFocus: true });
  } else if (event.topic === "presence") {
    if (event.data?.device_id) cameraPresence(event.data.device_id, event.data.state);
    loadDevices();
  } else if (event.topic === "radio") {
    refreshRadio();
  } else if (event.topic === "incident") {
    incidentEvent();
  } else if (event.topic === "warning") {
    refreshWarnings();
  }
}

async function start() {
  document.getElementById("login").hidden = true;
  document.getElementById("wall").hidden = false;
  const user = currentUser();
  document.getElementById("user").textContent = user?.display_name || user?.username || "";
  const [config] = await Promise.all([api("/api/ui-config", { auth: false }), loadUnits()]);
  const district = unitsGeoJSON().features.find((f) => f.properties.level === "district");
  document.getElementById("district").textContent = district ? unitName(district.id) : "";
  initMap(config, { onAlert: openDrawer });
  setOpenHandler(openDrawer);
  initIncidents({ onOpenAlert: openDrawer });
  onAlertsChange(() => {
    refreshMap();
    rerenderKpis();
  });
  live = connectLive({
    onEvent: onLiveEvent,
    onReset: resetAlerts,
    onSynced: ({ last_seq }) => {
      refreshIncidents();
      document.body.dataset.live = "online";
      document.body.dataset.lastSeq = String(last_seq);
    },
    onStatus: (status) => {
      document.body.dataset.live = status;
      showConnection(status);
    },
  });
  await loadDevices();
  startCameras();
  startKpis();
  refreshRadio();
  refreshWarnings();
  setInterval(loadDevices, DEVICES_EVERY_MS);
  setInterval(refreshRadio, DEVICES_EVERY_MS);
  setInterval(refreshWarnings, DEVICES_EVERY_MS);
  keepSessionFresh();
}

function boot() {
  applyTranslations();
  bindLangToggle(document.getElementById("lang"));
  const renderMute = bindMute(document.getElementById("mute"));
  initDrawer();
  initRadio();
  initBroadcastHistory();
  startClock(document.getElementById("clock"));
  onLangChange(() => {
    renderMute();
    rerender();
    rerenderCameras();
    refreshMap();
    rerenderKpis();
    refreshRadio();
  });
  document.getElementById("logout").addEventListener("click", async () => {
    live?.close();
    await logout();
    location.reload();
  });
  const form = document.getElementById("login");
  bindLoginForm(form, () => {
    unlockAudio();
    start();
  });
  // A session that can no longer be refreshed (expired, revoked): back to the login form.
  onSessionChange((next) => {
    if (!next) location.reload();
  });
  if (session()?.access_token) start();
  else {
    form.hidden = false;
    document.getElementById("username").focus();
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
