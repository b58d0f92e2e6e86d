// The commune console (/console/): a commune officer's incidents, alerts and citizens' reports, on a
// phone or a desk. The server decides what the officer may see (their commune only) and do; this page shows
// it, keeps it live over /ws, and sends the officer's actions with a note and a photo.

import { api, bindLoginForm, currentUser, keepSessionFresh, logout, onSessionChange } from "/common/api.js";
import { el, showConnection } from "/common/dom.js";
import { addStrings, applyTranslations, bindLangToggle, lang, onLangChange, t } from "/common/i18n.js";
import { connectLive } from "/common/live.js";
import { PhotoPicker } from "/phan-anh/photos.js";
import { renderAlertDetail, renderReportDetail } from "./detail.js";
import { incidentChanged, initIncidents, loadIncidents, openIncident, renderIncidents, renderOpenIncident } from "./incidents.js";
import { initNotifications, notifyNew, toast } from "./notify.js";
import { STRINGS } from "./strings.js";
import { onWarningEvent, refreshWarnings } from "./warnings.js";

addStrings(STRINGS);

const $ = (id) => document.getElementById(id);
const SEVERITY_RANK = { info: 0, minor: 1, moderate: 2, severe: 3, critical: 4 };
const STATUS_RANK = { new: 0, acknowledged: 1, in_progress: 2, resolved: 3, closed: 4, dismissed: 5 };
const OPEN = new Set(["new", "acknowledged", "in_progress"]);
// What a commune officer may do from each status (the server checks again: 403/409 with the reason).
const ACTIONS = {
  new: ["acknowledge", "start", "resolve"],
  acknowledged: ["start", "comment", "resolve"],
  in_progress: ["comment", "resolve"],
  resolved: ["reopen", "comment"],
};
const NEEDS_NOTE = new Set(["comment", "reopen"]);

const state = {
  tab: "alerts",
  alerts: new Map(), // id -> alert
  reports: [],
  units: new Map(), // id -> {name, name_en}
  categories: new Map(), // id -> {name, name_en}
  open: null, // {type: "alert"|"report"|"incident", id, data}
  live: null,
  synced: false,
  notified: new Set(), // alert ids already announced
};

const photo = new PhotoPicker({ input: $("action-photo"), list: $("action-previews"), error: $("action-photo-error"), max: 1 });

/** Run an async step from a click or an event; its failure is shown, never left unhandled. */
function safely(promise) {
  return promise.catch((err) => toast(err.message));
}

// ---- names -------------------------------------------------------------------------------------

function unitName(id) {
  const unit = state.units.get(id);
  if (!unit) return id || "";
  return lang() === "en" && unit.name_en ? unit.name_en : unit.name;
}

function categoryName(id) {
  const c = state.categories.get(id);
  if (!c) return id;
  return lang() === "en" ? c.name_en : c.name;
}

async function loadNames() {
  const [units, categories] = await Promise.all([
    api("/api/units", { auth: false }).catch(() => ({ features: [] })),
    api("/api/public/report-categories", { auth: false }).catch(() => []),
  ]);
  for (const f of units.features || []) state.units.set(f.properties.id, f.properties);
  for (const c of categories) state.categories.set(c.id, c);
}

// ---- alerts list -------------------------------------------------------------------------------

function alertFilters() {
  return { status: $("alert-status").value, min_severity: $("alert-severity").value, q: $("alert-q").value.trim() };
}

// "Snooze": an open alert leaves this device's list for SNOOZE_MIN minutes (kept in this browser,
// not audited; a false alarm, which silences the cause for everyone, is the audited action).
const SNOOZE_MIN = 15;
const SNOOZE_KEY = "ioc.console.snoozed";
const snoozed = new Map(Object.entries(JSON.parse(localStorage.getItem(SNOOZE_KEY) || "{}")).map(([k, v]) => [Number(k), v]));

function snooze(alert) {
  snoozed.set(alert.id, Date.now() + SNOOZE_MIN * 60_000);
  localStorage.setItem(SNOOZE_KEY, JSON.stringify(Object.fromEntries(snoozed)));
  setTimeout(renderAlerts, SNOOZE_MIN * 60_000 + 50);
  toast(t("action.snoozed", { title: alert.title, n: SNOOZE_MIN }));
  renderAlerts();
}

function matches(alert) {
  const f = alertFilters();
  if (f.status === "open" ? !OPEN.has(alert.status) : alert.status !== f.status) return false;
  if (f.status === "open" && (snoozed.get(alert.id) || 0) > Date.now()) return false;
  if (f.min_severity && SEVERITY_RANK[alert.severity] < SEVERITY_RANK[f.min_severity]) return false;
  return true;
}

async function loadAlerts() {
  const f = alertFilters();
  const page = await api("/api/alerts", { query: { ...f, limit: 200 } });
  state.alerts = new Map(page.items.map((a) => [a.id, a]));
  renderAlerts();
}

function byUrgency(a, b) {
  return (
    (STATUS_RANK[a.status] ?? 9) - (STATUS_RANK[b.status] ?? 9) ||
    SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] ||
    new Date(b.last_seen) - new Date(a.last_seen)
  );
}

function alertRow(alert) {
  const open = el(
    "button",
    { type: "button", class: "row-main", onclick: () => safely(openAlert(alert.id)) },
    el("span", { class: `sev sev-${alert.severity}`, text: t(`severity.${alert.severity}`) }),
    el("span", { class: "row-title", text: alert.title }),
    el("span", { class: "row-meta" },
      el("span", { class: `status status-${alert.status}`, text: t(`status.${alert.status}`) }),
      " · ", unitName(alert.unit_id), " · ",
      el("time", { datetime: alert.last_seen, text: formatShort(alert.last_seen) })),
  );
  const current = state.open?.type === "alert" && state.open.id === alert.id;
  return el("li", { class: current ? "row current" : "row", dataset: { alertId: alert.id, status: alert.status } }, open);
}

function renderAlerts() {
  const items = [...state.alerts.values()].filter(matches).sort(byUrgency);
  $("alert-list").replaceChildren(...items.map(alertRow));
  $("alerts-empty").hidden = items.length > 0;
  const openCount = [...state.alerts.values()].filter((a) => OPEN.has(a.status)).length;
  $("count-alerts").textContent = openCount ? `(${openCount})` : "";
}

// ---- reports list ------------------------------------------------------------------------------

async function loadReports() {
  const query = { status: $("report-status").value, q: $("report-q").value.trim(), limit: 100 };
  state.reports = await api("/api/reports", { query });
  renderReports();
}

function reportRow(report) {
  const open = el(
    "button",
    { type: "button", class: "row-main", onclick: () => safely(openReport(report.id)) },
    el("span", { class: "row-title", text: `${report.public_id} · ${categoryName(report.category)}` }),
    el("span", { class: "row-text", text: report.description.slice(0, 140) }),
    el("span", { class: "row-meta" },
      el("span", { class: `status report-${report.status}`, text: t(`report.${report.status}`) }),
      report.overdue ? el("span", { class: "overdue", text: ` · ${t("report.overdue")}` }) : null,
      " · ", el("time", { datetime: report.created_at, text: formatShort(report.created_at) })),
  );
  const current = state.open?.type === "report" && state.open.id === report.id;
  return el("li", { class: current ? "row current" : "row", dataset: { reportId: report.id, status: report.status } }, open);
}

function renderReports() {
  $("report-list").replaceChildren(...state.reports.map(reportRow));
  $("reports-empty").hidden = state.reports.length > 0;
  const openCount = state.reports.filter((r) => r.status === "received" || r.status === "in_progress").length;
  $("count-reports").textContent = openCount && $("report-status").value === "open" ? `(${openCount})` : "";
}

let reportsTimer = null;
function reloadReportsSoon() {
  clearTimeout(reportsTimer);
  reportsTimer = setTimeout(() => loadReports().catch(() => {}), 300);
}

// ---- detail and actions ------------------------------------------------------------------------

function formatShort(value) {
  return value ? new Intl.DateTimeFormat(lang() === "vi" ? "vi-VN" : "en-GB", {
    timeZone: "Asia/Ho_Chi_Minh", day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
  }).format(new Date(value)) : "";
}

function showDetail(visible) {
  $("detail").hidden = !visible;
  document.body.classList.toggle("detail-open", visible);
}

async function openAlert(id, { focus = true } = {}) {
  $("action-error").textContent = "";
  const data = await api(`/api/alerts/${id}`);
  state.open = { type: "alert", id, data };
  state.alerts.set(id, { ...(state.alerts.get(id) || {}), ...data });
  setHash(`#alert-${id}`);
  renderOpen();
  renderAlerts();
  renderIncidents();
  showDetail(true);
  if (focus) $("detail-body").querySelector("h2")?.focus();
}

async function openReport(id, { focus = true } = {}) {
  $("action-error").textContent = "";
  $("reply-error").textContent = "";
  const data = await api(`/api/reports/${id}`);
  let alert = null;
  if (data.alert_id) alert = await api(`/api/alerts/${data.alert_id}`).catch(() => null);
  state.open = { type: "report", id, data, alert };
  setHash("");
  renderOpen();
  renderReports();
  renderIncidents();
  showDetail(true);
  if (focus) $("detail-body").querySelector("h2")?.focus();
}

/** Keep the address in step with what is open (`#incident-3`, `#alert-7`): a reload or a link reopens it. */
function setHash(hash) {
  if (location.hash !== hash) history.replaceState(null, "", hash || location.pathname + location.search);
}

/** Show an incident (built by incidents.js) in the detail column; the alert and reply forms hide. */
function showOpen(open, node, { focus = true } = {}) {
  state.open = open;
  $("detail-body").replaceChildren(node);
  $("action-form").hidden = true;
  $("reply-form").hidden = true;
  renderAlerts();
  renderReports();
  showDetail(true);
  if (focus) $("detail-body").querySelector("h2")?.focus();
}

function renderOpen() {
  const open = state.open;
  if (!open) return;
  if (open.type === "incident") {
    $("detail-body").replaceChildren(renderOpenIncident(open));
    return;
  }
  const helpers = { unitName, categoryName, formatShort, merge: (id, into) => safely(merge(id, into)) };
  if (open.type === "alert") $("detail-body").replaceChildren(renderAlertDetail(open.data, helpers));
  else $("detail-body").replaceChildren(renderReportDetail(open.data, open.alert, helpers));
  const alert = open.type === "alert" ? open.data : open.alert;
  const role = currentUser()?.role;
  let actions = alert ? ACTIONS[alert.status] || [] : [];
  if (role === "leader") actions = actions.filter((a) => a === "comment"); // leaders read and comment
  // A false alarm silences its cause for everyone (for the rule book's quiet time): operators only.
  if (alert && OPEN.has(alert.status) && (role === "operator" || role === "admin")) actions = [...actions, "dismiss"];
  if (alert && OPEN.has(alert.status)) actions = [...actions, "snooze"];
  $("action-form").hidden = actions.length === 0;
  $("action-buttons").replaceChildren(
    ...actions.map((action) =>
      el("button", { type: "button", class: action === "resolve" ? "primary" : "", dataset: { action },
        onclick: () => (action === "snooze" ? snooze(alert) : act(alert, action)), text: t(`action.${action}`) }),
    ),
  );
  $("reply-form").hidden = open.type !== "report" || role === "leader";
}

async function act(alert, action) {
  const error = $("action-error");
  error.textContent = "";
  const note = $("action-note").value.trim().normalize("NFC") || (action === "dismiss" ? t("action.dismiss") : "");
  if (NEEDS_NOTE.has(action) && !note) {
    error.textContent = t("action.need_note");
    $("action-note").focus();
    return;
  }
  const buttons = [...$("action-buttons").querySelectorAll("button")];
  buttons.forEach((b) => (b.disabled = true));
  try {
    let photoRef;
    const [file] = photo.files();
    if (file) {
      error.textContent = t("action.uploading");
      const form = new FormData();
      form.append("photo", file, file.name);
      photoRef = (await api(`/api/alerts/${alert.id}/photos`, { method: "POST", form })).photo_ref;
      error.textContent = "";
    }
    const updated = await api(`/api/alerts/${alert.id}/actions`, {
      method: "POST",
      json: { action, ...(note ? { note } : {}), ...(photoRef ? { photo_ref: photoRef } : {}) },
    });
    state.alerts.set(updated.id, { ...(state.alerts.get(updated.id) || {}), ...updated });
    // Clear only what was sent: the officer may already be typing the next note (the live event of
    // this action can reach the list before this answer does).
    if ($("action-note").value.trim().normalize("NFC") === note) $("action-note").value = "";
    if (photo.files()[0] === file) photo.clear();
    toast(t("action.done", { title: updated.title }));
    if (state.open?.type === "report") await openReport(state.open.id);
    else await openAlert(updated.id);
    if (updated.kind?.startsWith("report.")) reloadReportsSoon();
  } catch (err) {
    error.textContent = err.message;
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

/** Merge a duplicate report into the one it repeats: its alert is closed, its citizen follows the other. */
async function merge(reportId, into) {
  await api(`/api/reports/${reportId}/merge`, { method: "POST", json: { into } });
  toast(t("report.merged", { id: into }));
  await Promise.all([openReport(reportId), loadReports(), loadAlerts()]);
}

async function reply(event) {
  event.preventDefault();
  const error = $("reply-error");
  error.textContent = "";
  const text = $("reply-text").value.trim().normalize("NFC");
  if (!text) {
    $("reply-text").focus();
    return;
  }
  try {
    await api(`/api/reports/${state.open.id}/replies`, { method: "POST", json: { text, public: $("reply-public").checked } });
    if ($("reply-text").value.trim().normalize("NFC") === text) $("reply-text").value = ""; // not a newer draft
    toast(t("reply.sent"));
    await openReport(state.open.id);
  } catch (err) {
    error.textContent = err.message;
  }
}

// ---- live --------------------------------------------------------------------------------------

const openIncidentId = () => (state.open?.type === "incident" ? state.open.id : null);

async function onLiveEvent(event, { phase }) {
  if (event.topic === "warning") return onWarningEvent(event, { phase });
  if (event.topic === "incident") return incidentChanged(openIncidentId());
  if (event.topic !== "alert") return;
  const id = event.data?.id;
  if (id === undefined) return;
  // An alert of the incident on screen changed (acknowledged at the wall, resolved): show it as it is.
  if (phase !== "snapshot" && state.open?.type === "incident" && state.open.data.signals.some((s) => s.signal === "alert" && s.ref === id)) {
    incidentChanged(state.open.id);
  }
  let alert = { ...(state.alerts.get(id) || {}), ...event.data };
  if (!alert.title || !alert.last_seen) {
    try {
      alert = await api(`/api/alerts/${id}`);
    } catch {
      return; // not visible to this officer (any more)
    }
  }
  // New to this officer: raised now, or raised while the stream was down (replayed, still new).
  const isNew = !state.alerts.has(id) && alert.status === "new" && (event.type === "alert.created" || phase === "replay");
  // With a search typed, only rows already listed are updated (the server does the searching);
  // an answer that raced a newer change (lower seq) is not allowed to undo it.
  const known = state.alerts.get(id);
  if ((!alertFilters().q || known) && !(known && known.seq > alert.seq)) state.alerts.set(id, alert);
  renderAlerts();
  if (isNew && phase !== "snapshot" && state.synced && !state.notified.has(id)) {
    state.notified.add(id);
    notifyNew(alert.title, { tag: `alert-${id}`, onOpen: () => { selectTab("alerts"); safely(openAlert(id)); } });
  }
  if (alert.kind?.startsWith("report.")) reloadReportsSoon();
  // Someone else changed what is open: show it as it is now, without moving the officer's focus.
  if (phase !== "snapshot" && state.open?.type === "alert" && state.open.id === id) safely(openAlert(id, { focus: false }));
  if (phase !== "snapshot" && state.open?.type === "report" && state.open.alert?.id === id) {
    safely(openReport(state.open.id, { focus: false }));
  }
}

function startLive() {
  state.live?.close();
  state.live = connectLive({
    topics: ["alert", "warning", "incident"],
    onEvent: (event, meta) => { safely(onLiveEvent(event, meta)); },
    // body[data-live] says where the stream stands (synced / offline): for styling and tests.
    onSynced: () => { state.synced = true; document.body.dataset.live = "synced"; },
    onStatus: (status) => { showConnection(status); if (status === "offline") document.body.dataset.live = "offline"; },
  });
}

// ---- tabs, login, start ------------------------------------------------------------------------

const TABS = ["incidents", "alerts", "reports"];

function selectTab(tab) {
  state.tab = tab;
  for (const name of TABS) {
    $(`panel-${name}`).hidden = tab !== name;
    $(`tab-${name}`).setAttribute("aria-pressed", String(tab === name));
  }
}

/** `#incident-<id>` (an on-call page's link) or `#alert-<id>` in the address opens that item. */
function routeHash() {
  const match = /^#(incident|alert)-(\d+)$/.exec(location.hash);
  if (!match || !currentUser()) return;
  const id = Number(match[2]);
  if (state.open?.type === match[1] && state.open.id === id) return;
  selectTab(match[1] === "incident" ? "incidents" : "alerts");
  safely(match[1] === "incident" ? openIncident(id) : openAlert(id));
}

function renderWho() {
  const user = currentUser();
  if (!user) return;
  $("who").textContent = t("who", { name: user.display_name || user.username, unit: user.unit_id ? unitName(user.unit_id) : "IOC" });
}

async function start() {
  $("login-form").hidden = true;
  $("workspace").hidden = false;
  $("logout").hidden = false;
  if (!state.refreshing) {
    keepSessionFresh();
    state.refreshing = true;
  }
  await loadNames();
  renderWho();
  selectTab(state.tab);
  await Promise.all([loadAlerts(), loadReports(), loadIncidents()]).catch((err) => toast(err.message));
  refreshWarnings();
  startLive();
  routeHash();
  // body[data-ready]: the lists are loaded and the page answers clicks (for tests and styling).
  document.body.dataset.ready = "true";
}

function showLogin() {
  state.live?.close();
  state.live = null;
  $("workspace").hidden = true;
  $("logout").hidden = true;
  $("login-form").hidden = false;
  $("who").textContent = "";
  showConnection("online");
  $("username").focus();
}

applyTranslations();
bindLangToggle($("lang-toggle"));
onLangChange(() => {
  renderWho();
  renderAlerts();
  renderReports();
  renderIncidents();
  renderOpen();
  photo.render();
});
initNotifications($("notify-enable"));
bindLoginForm($("login-form"), start);
onSessionChange((session) => { if (!session) showLogin(); });
$("logout").addEventListener("click", () => logout());
initIncidents({ unitName, openAlert, showOpen, toast, safely,
  isOpen: (id) => state.open?.type === "incident" && state.open.id === id });
$("tab-incidents").addEventListener("click", () => selectTab("incidents"));
$("tab-alerts").addEventListener("click", () => selectTab("alerts"));
$("tab-reports").addEventListener("click", () => selectTab("reports"));
$("detail-back").addEventListener("click", () => {
  showDetail(false);
  state.open = null;
  setHash("");
  renderAlerts();
  renderReports();
  renderIncidents();
});
window.addEventListener("hashchange", routeHash);
for (const id of ["alert-status", "alert-severity"]) $(id).addEventListener("change", () => loadAlerts().catch((e) => toast(e.message)));
for (const id of ["report-status"]) $(id).addEventListener("change", () => loadReports().catch((e) => toast(e.message)));
let searchTimer = null;
$("alert-q").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => loadAlerts().catch(() => {}), 300); });
$("report-q").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => loadReports().catch(() => {}), 300); });
for (const form of ["alert-filters", "report-filters"]) $(form).addEventListener("submit", (e) => e.preventDefault());
$("reply-form").addEventListener("submit", reply);

if (currentUser()) start();
else showLogin();
