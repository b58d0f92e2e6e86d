// The wall's incident queue: the operator works on incidents (one case from many signals), not on
// raw alerts. The queue panel shows open incidents with their signal counts (the raw alert queue
// stays one tab away); one click opens the incident in the drawer: its checklist, its signals (each
// alert opens its own evidence drawer) and its timeline. Live context: a sensor incident's readings, a
// camera incident's evidence clips (each jumps to its camera and plays). Live `incident` events refresh
// the queue.
import { api, ApiError } from "../common/api.js";
import { el } from "../common/dom.js";
import { formatDate, t } from "../common/i18n.js";
import {
  incidentChecklist, incidentFacts, incidentSignals, incidentTimeline, incidentUnits,
} from "../common/incident-view.js";
import { SEVERITIES } from "./alerts.js";
import { clipControl } from "./evidence-clip.js";
import { readingsChart } from "./readings.js";
import { unitName } from "./units.js";

const REFRESH_DELAY_MS = 400;
const incidents = new Map();
let openAlert = () => {};
let shown = null;
let pending = null;

const rank = (severity) => SEVERITIES.indexOf(severity);
const compare = (a, b) =>
  rank(b.severity) - rank(a.severity) || Date.parse(b.last_signal_at) - Date.parse(a.last_signal_at) || b.id - a.id;

function row(incident) {
  const button = el(
    "button",
    { type: "button", class: "alert-open", onclick: () => openIncident(incident.id) },
    el("span", { class: `sev sev-${incident.severity}` }, t(`severity.${incident.severity}`)),
    el("span", { class: "alert-title" }, incident.title),
    el("span", { class: "alert-count" }, t("incidents.signals", { n: incident.signal_count })),
    el(
      "span",
      { class: "alert-meta" },
      incidentUnits(incident, unitName),
      " · ",
      el("time", { datetime: incident.last_signal_at }, formatDate(incident.last_signal_at, "short")),
      incident.open_alerts ? ` · ${t("incidents.open_alerts", { n: incident.open_alerts })}` : "",
    ),
  );
  return el(
    "li",
    { class: `alert-row incident-row sev-border-${incident.severity}`, dataset: { incidentId: incident.id, severity: incident.severity } },
    button,
  );
}

function render() {
  const list = document.getElementById("incident-queue");
  if (!list) return;
  const open = [...incidents.values()].sort(compare);
  list.replaceChildren(...open.map(row));
  document.getElementById("incident-empty").hidden = open.length > 0;
  document.getElementById("incident-tab-count").textContent = open.length ? `(${open.length})` : "";
}

/** Reload the open incidents (after a live event, debounced; after a reconnect). */
export async function refreshIncidents() {
  try {
    const page = await api("/api/incidents", { query: { status: "active", limit: 200 } });
    incidents.clear();
    for (const item of page.items) incidents.set(item.id, item);
    render();
    if (shown !== null) openIncident(shown, { keepFocus: true });
  } catch (err) {
    console.warn("incidents:", err.message);
  }
}

/** A live `incident` event: refresh once the burst is over. */
export function incidentEvent() {
  clearTimeout(pending);
  pending = setTimeout(refreshIncidents, REFRESH_DELAY_MS);
}

function showTab(which) {
  const incidentsOn = which === "incidents";
  document.getElementById("incident-queue").hidden = !incidentsOn;
  document.getElementById("incident-empty").hidden = !incidentsOn || incidents.size > 0;
  document.getElementById("queue").hidden = incidentsOn;
  document.getElementById("queue-empty").hidden = incidentsOn || document.getElementById("queue").children.length > 0;
  for (const tab of document.querySelectorAll(".queue-tab")) tab.setAttribute("aria-selected", String(tab.dataset.tab === which));
  document.querySelector(".queue-panel").dataset.tab = which;
}

/** Sensor incidents: each station's current value and its day (at most three stations). */
function liveContext(incident) {
  const sensors = incident.signals.filter((s) => s.signal === "alert" && s.topic.startsWith("sensor.")).slice(0, 3);
  if (!sensors.length) return [];
  const box = el("div", { class: "readings-list", id: "incident-readings" });
  for (const s of sensors) {
    api(`/api/alerts/${s.ref}`)
      .then((alert) => {
        const ev = alert.evidence || {};
        if (ev.device_id && ev.metric && !box.querySelector(`[data-device-id="${CSS.escape(ev.device_id)}"]`)) {
          box.append(readingsChart(ev.device_id, ev.metric, alert.title.split(":")[0]));
        }
      })
      .catch(() => {});
  }
  return [el("h3", {}, t("readings.title")), box];
}

/** Camera incidents: the evidence clip of each camera signal (the newest five), each playable in its camera. */
function cameraContext(incident) {
  const cameras = incident.signals.filter((s) => s.signal === "alert" && s.topic.startsWith("camera.")).slice(-5);
  if (!cameras.length) return [];
  const list = el("ul", { class: "incident-clips", id: "incident-clips" });
  const heading = el("h3", { hidden: true }, t("clip.title"));
  for (const s of cameras) {
    api(`/api/alerts/${s.ref}`)
      .then((alert) => {
        const control = clipControl(alert);
        if (!control) return;
        list.append(el("li", { dataset: { alertId: alert.id } }, el("span", {}, `${alert.title} · ${formatDate(alert.last_seen, "short")} `), control));
        heading.hidden = false;
      })
      .catch(() => {});
  }
  return [heading, list];
}

let message = null;

async function act(id, body) {
  try {
    await api(`/api/incidents/${id}/actions`, { method: "POST", json: body });
    await refreshIncidents();
    await openIncident(id, { keepFocus: true });
    if (message) message.textContent = t("incidents.done");
  } catch (err) {
    if (message) {
      message.textContent = err instanceof ApiError ? err.message : String(err);
      message.className = "action-message error-text";
    }
  }
}

/** Show incident `id` in the drawer. */
export async function openIncident(id, { keepFocus = false } = {}) {
  shown = id;
  const drawer = document.getElementById("drawer");
  const body = document.getElementById("drawer-body");
  drawer.hidden = false;
  drawer.dataset.incidentId = id;
  delete drawer.dataset.alertId;
  let incident;
  try {
    incident = await api(`/api/incidents/${id}`);
  } catch (err) {
    body.replaceChildren(el("p", { class: "error-text" }, err.message));
    return;
  }
  if (shown !== id) return;
  drawer.dataset.status = incident.status;
  document.getElementById("drawer-title").textContent = incident.title;
  message = el("p", { class: "action-message", role: "status" });
  const canClose = incident.status === "open" || incident.status === "resolved";
  body.replaceChildren(
    incidentFacts(incident, { unitName }),
    el(
      "div",
      { class: "drawer-actions" },
      incident.status === "open"
        ? el("button", { type: "button", id: "incident-resolve", onclick: () => act(id, { action: "resolve" }) }, t("incidents.resolve"))
        : "",
      canClose ? el("button", { type: "button", id: "incident-close", onclick: () => act(id, { action: "close" }) }, t("incidents.close")) : "",
      message,
    ),
    ...(incident.checklist.length
      ? [el("h3", {}, t("incidents.checklist")), incidentChecklist(incident, { onStep: (step) => act(incident.id, { action: "step", step }) })]
      : []),
    ...liveContext(incident),
    ...cameraContext(incident),
    el("h3", {}, `${t("incidents.signals_title")} (${incident.signals.length})`),
    incidentSignals(incident, { unitName, onOpenAlert: (alertId) => openAlert(alertId) }),
    el("h3", {}, t("incidents.timeline")),
    incidentTimeline(incident),
  );
  if (!keepFocus) document.getElementById("drawer-close").focus();
}

/** The incident shown in the drawer (null when the drawer shows an alert or is closed). */
export function shownIncident() {
  return document.getElementById("drawer").hidden ? null : shown;
}

/** Wire the tabs of the queue panel; incidents first. `onOpenAlert(id)` opens an alert's drawer. */
export function initIncidents({ onOpenAlert }) {
  openAlert = (alertId) => {
    shown = null;
    onOpenAlert(alertId);
  };
  for (const tab of document.querySelectorAll(".queue-tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
  document.getElementById("drawer-close").addEventListener("click", () => {
    shown = null;
  });
  showTab("incidents");
  refreshIncidents();
}
