// The wall's alert queue: open alerts kept from the live stream (snapshot, replays, live changes),
// shown most severe first, then newest. Lifecycle events carry only the new status: the alert held
// is updated in place, or fetched when this page has not seen it yet.
import { api } from "../common/api.js";
import { el } from "../common/dom.js";
import { formatDate, t } from "../common/i18n.js";
import { beep } from "./sound.js";
import { unitName } from "./units.js";

export const SEVERITIES = ["info", "minor", "moderate", "severe", "critical"];
const OPEN = new Set(["new", "acknowledged", "in_progress"]);
const MAX_ROWS = 300; // a wall shows the top of the queue; the DOM stays small during a storm

const alerts = new Map(); // id -> alert
const listeners = new Set();
let onOpen = () => {};

export const rank = (severity) => SEVERITIES.indexOf(severity);

/** Most severe first, then the most recently seen. */
export function compareAlerts(a, b) {
  return rank(b.severity) - rank(a.severity) || Date.parse(b.last_seen || 0) - Date.parse(a.last_seen || 0) || b.id - a.id;
}

// Snoozed alerts leave this screen's queue until their time is up (kept per browser, not audited:
// a false alarm, which silences the cause for everyone, is the audited action).
const SNOOZE_KEY = "ioc.wall.snoozed";
const snoozed = new Map(Object.entries(JSON.parse(localStorage.getItem(SNOOZE_KEY) || "{}")).map(([k, v]) => [Number(k), v]));

/** Hide alert `id` from this screen's queue for `minutes`; returns when it comes back. */
export function snoozeAlert(id, minutes) {
  const until = Date.now() + minutes * 60_000;
  snoozed.set(Number(id), until);
  localStorage.setItem(SNOOZE_KEY, JSON.stringify(Object.fromEntries(snoozed)));
  setTimeout(changed, minutes * 60_000 + 50);
  changed();
  return new Date(until);
}

function isSnoozed(alert) {
  const until = snoozed.get(alert.id);
  if (until && until <= Date.now()) snoozed.delete(alert.id);
  return Boolean(until && until > Date.now());
}

export function openAlerts() {
  return [...alerts.values()].filter((a) => OPEN.has(a.status) && !isSnoozed(a)).sort(compareAlerts);
}

export function getAlert(id) {
  return alerts.get(Number(id));
}

/** Call `fn()` whenever the set of open alerts changes (map colours, KPI tiles). */
export function onAlertsChange(fn) {
  listeners.add(fn);
}

/** What a click on a row does (the evidence drawer). */
export function setOpenHandler(fn) {
  onOpen = fn;
}

let scheduled = false;
function changed() {
  if (scheduled) return;
  scheduled = true;
  setTimeout(() => {
    scheduled = false;
    render();
    for (const fn of listeners) fn();
  }, 30);
}

export function resetAlerts() {
  alerts.clear();
  changed();
}

/** Store what the server sent (a full row, or only the changed fields). */
export function upsertAlert(data, { at, phase } = {}) {
  const id = Number(data.id);
  const before = alerts.get(id);
  const merged = { ...(before || {}), ...data, id };
  if (!merged.last_seen && at) merged.last_seen = at;
  if (data.count !== undefined && at && phase === "live") merged.last_seen = at;
  alerts.set(id, merged);
  // Live events carry only what changed (no position, no assignment): fetch the whole row the
  // first time this page sees the alert, or when something it needs is missing.
  if (!merged.title || !merged.severity || (!before && !("last_seen" in data))) fetchAlert(id);
  const isNew = !before || (before.status && !OPEN.has(before.status) && OPEN.has(merged.status));
  // Sound for a critical alert this page has not shown yet, live or replayed after a reconnect
  // (not for the snapshot that fills the queue when the wall opens).
  if ((phase === "live" || phase === "replay") && isNew && merged.severity === "critical" && OPEN.has(merged.status)) {
    beep();
  }
  changed();
  return merged;
}

/** Fetch one alert's full row (after a partial event, or after acting on it). */
export async function fetchAlert(id) {
  try {
    const full = await api(`/api/alerts/${id}`);
    const held = alerts.get(Number(id));
    if (!held || (held.seq ?? 0) <= full.seq) alerts.set(Number(id), { ...held, ...full });
    changed();
    return full;
  } catch (err) {
    console.warn(`alert ${id}:`, err.message);
    return null;
  }
}

function row(alert) {
  const button = el(
    "button",
    { type: "button", class: "alert-open", onclick: () => onOpen(alert.id) },
    el("span", { class: `sev sev-${alert.severity}` }, t(`severity.${alert.severity}`)),
    el("span", { class: "alert-title" }, alert.title || `#${alert.id}`),
    alert.count > 1 ? el("span", { class: "alert-count" }, t("queue.count", { n: alert.count })) : null,
    el(
      "span",
      { class: "alert-meta" },
      alert.assigned_unit_id && alert.assigned_unit_id !== alert.unit_id
        ? `${unitName(alert.unit_id)} → ${unitName(alert.assigned_unit_id)}`
        : unitName(alert.unit_id),
      " · ",
      el("time", { datetime: alert.last_seen || "" }, formatDate(alert.last_seen, "short")),
      " · ",
      el("span", { class: `status status-${alert.status}` }, t(`status.${alert.status}`)),
    ),
  );
  return el(
    "li",
    { class: `alert-row sev-border-${alert.severity}`, dataset: { alertId: alert.id, status: alert.status, severity: alert.severity } },
    button,
  );
}

function render() {
  const list = document.getElementById("queue");
  const open = openAlerts();
  list.replaceChildren(...open.slice(0, MAX_ROWS).map(row)); // the count below says how many there are
  document.getElementById("queue-empty").hidden = open.length > 0;
  document.getElementById("queue-count").textContent = open.length ? `(${open.length})` : "";
}

export function rerender() {
  changed();
}
