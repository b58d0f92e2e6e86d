// The commune's incidents on its console: those it leads or helps with (the server decides), each
// with its signal count and status; one opens in the detail column with its checklist, its signals
// (each alert opens the alert's own detail and actions) and its timeline, drawn by the same code as
// the wall's drawer (common/incident-view.js). The officer acknowledges the incident (its new
// alerts of this commune) and ticks checklist steps; leaders read. `#incident-<id>` in the address
// (the link of an on-call page) opens one.
import { api, currentUser } from "/common/api.js";
import { el } from "/common/dom.js";
import { formatDate, t } from "/common/i18n.js";
import {
  incidentChecklist, incidentFacts, incidentSignals, incidentTimeline, incidentUnits, newAlertCount,
} from "/common/incident-view.js";

const REFRESH_DELAY_MS = 300;
const SEVERITIES = ["info", "minor", "moderate", "severe", "critical"];
const $ = (id) => document.getElementById(id);

let incidents = [];
let hooks = null; // from app.js: unitName, openAlert, showOpen, isOpen, toast
let pending = null;

/** May this user act on incidents (acknowledge, tick steps)? Leaders read and comment only. */
function mayAct() {
  return ["commune_officer", "operator", "admin"].includes(currentUser()?.role);
}

function row(incident) {
  const current = hooks.isOpen(incident.id);
  return el(
    "li",
    { class: current ? "row current" : "row", dataset: { incidentId: incident.id, status: incident.status,
      severity: incident.severity } },
    el(
      "button",
      { type: "button", class: "row-main", onclick: () => hooks.safely(openIncident(incident.id)) },
      el("span", { class: `sev sev-${incident.severity}`, text: t(`severity.${incident.severity}`) }),
      el("span", { class: "row-title", text: incident.title }),
      el("span", { class: "row-meta" },
        el("span", { class: `status incident-${incident.status}`, text: t(`incident_status.${incident.status}`) }),
        " · ", el("span", { class: "signal-count", text: t("incidents.signals", { n: incident.signal_count }) }),
        incident.open_alerts ? ` · ${t("incidents.open_alerts", { n: incident.open_alerts })}` : "",
        " · ", incidentUnits(incident, hooks.unitName), " · ",
        el("time", { datetime: incident.last_signal_at, text: formatDate(incident.last_signal_at, "short") })),
    ),
  );
}

const byUrgency = (a, b) =>
  SEVERITIES.indexOf(b.severity) - SEVERITIES.indexOf(a.severity) ||
  Date.parse(b.last_signal_at) - Date.parse(a.last_signal_at) || b.id - a.id;

/** Draw the list as loaded (after a language switch too). */
export function renderIncidents() {
  if (!hooks) return;
  $("incident-list").replaceChildren(...[...incidents].sort(byUrgency).map(row));
  $("incidents-empty").hidden = incidents.length > 0;
  const open = incidents.filter((i) => i.status === "open").length;
  $("count-incidents").textContent = open && $("incident-filter").value === "active" ? `(${open})` : "";
}

/** Load the commune's incidents with the chosen status (open ones by default). */
export async function loadIncidents() {
  const page = await api("/api/incidents", { query: { status: $("incident-filter").value, limit: 200 } });
  incidents = page.items;
  renderIncidents();
}

async function act(id, body, button) {
  const error = $("incident-error");
  error.textContent = "";
  if (button) button.disabled = true;
  try {
    await api(`/api/incidents/${id}/actions`, { method: "POST", json: body });
    hooks.toast(t("incidents.done"));
    await Promise.all([openIncident(id, { focus: false }), loadIncidents()]);
  } catch (err) {
    error.textContent = err.message;
    if (button) button.disabled = false;
  }
}

/** The incident in the detail column. */
function render(incident) {
  const acting = mayAct();
  const fresh = newAlertCount(incident);
  return el("article", { class: "detail-card incident-card", dataset: { incidentId: incident.id } },
    el("h2", { tabindex: "-1", text: incident.title }),
    el("p", { class: "row-meta" }, t("incidents.signals", { n: incident.signal_count }), " · ",
      incidentUnits(incident, hooks.unitName)),
    incidentFacts(incident, { unitName: hooks.unitName, className: "facts" }),
    el("div", { class: "action-buttons" },
      acting && fresh && incident.status === "open"
        ? el("button", { type: "button", class: "primary", id: "incident-acknowledge",
          onclick: (e) => act(incident.id, { action: "acknowledge" }, e.currentTarget) },
        `${t("incidents.acknowledge")} (${t("incidents.new_alerts", { n: fresh })})`)
        : null),
    el("p", { class: "error-text", id: "incident-error", role: "alert" }),
    incident.checklist.length ? el("h3", { text: t("incidents.checklist") }) : null,
    incident.checklist.length
      ? incidentChecklist(incident, acting && incident.status !== "closed"
        ? { onStep: (step) => act(incident.id, { action: "step", step }) } : {})
      : null,
    el("h3", { text: `${t("incidents.signals_title")} (${incident.signals.length})` }),
    incidentSignals(incident, { unitName: hooks.unitName, onOpenAlert: (alertId) => hooks.safely(hooks.openAlert(alertId)) }),
    el("h3", { text: t("incidents.timeline") }),
    incidentTimeline(incident, { className: "timeline" }),
  );
}

/** Open incident `id` in the detail column (and say so in the address, for a reload or a link). */
export async function openIncident(id, { focus = true } = {}) {
  const incident = await api(`/api/incidents/${id}`);
  hooks.showOpen({ type: "incident", id, data: incident }, render(incident), { focus });
  if (location.hash !== `#incident-${id}`) history.replaceState(null, "", `#incident-${id}`);
  renderIncidents();
}

/** Redraw the open incident as it is (language switch). */
export function renderOpenIncident(open) {
  return render(open.data);
}

/** A live `incident` event (or an alert event while an incident is open): reload once the burst ends. */
export function incidentChanged(openId) {
  clearTimeout(pending);
  pending = setTimeout(() => {
    loadIncidents().catch(() => {});
    if (openId !== null && hooks.isOpen(openId)) hooks.safely(openIncident(openId, { focus: false }));
  }, REFRESH_DELAY_MS);
}

/** Wire the list; `h`: {unitName, openAlert, showOpen, isOpen, toast, safely}. */
export function initIncidents(h) {
  hooks = h;
  $("incident-filter").addEventListener("change", () => loadIncidents().catch((e) => h.toast(e.message)));
  $("incident-filters").addEventListener("submit", (e) => e.preventDefault());
}
