// The evidence drawer: one click on an alert shows its detail, its evidence (camera snapshot or
// the citizen's photos, fetched with the bearer token and shown as blob: URLs), its history, and
// the operator's actions: acknowledge, assign to a commune, mark a false alarm (the cause stays quiet
// for the configured time, audited with the operator's name), snooze on this screen, show the camera
// and play the evidence clip around the event in it.
import { api, ApiError } from "../common/api.js";
import { el } from "../common/dom.js";
import { formatDate, t } from "../common/i18n.js";
import { snoozeAlert, upsertAlert } from "./alerts.js";
import { focusCamera } from "./cameras.js";
import { cameraOf, clipControl } from "./evidence-clip.js";
import { communes, unitName } from "./units.js";

const drawer = () => document.getElementById("drawer");
let current = null;
let blobUrls = [];
let returnFocus = null;

async function imageUrl(path) {
  const blob = await api(path, { raw: true });
  const url = URL.createObjectURL(blob);
  blobUrls.push(url);
  return url;
}

function releaseImages() {
  for (const url of blobUrls) URL.revokeObjectURL(url);
  blobUrls = [];
}

async function evidenceImages(alert) {
  const ev = alert.evidence || {};
  if (ev.snapshot_ref) return [await imageUrl(`/api/media/${ev.snapshot_ref}`)];
  if (ev.report_id) {
    const report = await api(`/api/reports/${ev.report_id}`);
    const photos = (report.media || []).filter((m) => m.kind === "photo").slice(0, 5);
    return Promise.all(photos.map((m) => imageUrl(`${m.url}?thumb=true`)));
  }
  return [];
}

function field(label, value) {
  return [el("dt", {}, label), el("dd", {}, value ?? "–")];
}

function actions(alert) {
  const message = el("p", { class: "action-message", role: "status" });
  const ack = el(
    "button",
    { type: "button", class: "primary", id: "ack-button", disabled: alert.status !== "new" },
    t("drawer.acknowledge"),
  );
  ack.addEventListener("click", () => act(alert.id, { action: "acknowledge" }, message));
  const select = el(
    "select",
    { id: "assign-unit" },
    communes().map((u) => el("option", { value: u.id, selected: u.id === (alert.assigned_unit_id || alert.unit_id) }, unitName(u.id))),
  );
  const assign = el("button", { type: "button", id: "assign-button" }, t("drawer.assign"));
  assign.addEventListener("click", () => act(alert.id, { action: "assign", unit_id: select.value }, message));
  const open = ["new", "acknowledged", "in_progress"].includes(alert.status);
  const reason = el("input", { id: "false-alarm-note", type: "text", maxlength: 500, placeholder: t("drawer.false_alarm_note") });
  const falseAlarm = el("button", { type: "button", id: "false-alarm-button", disabled: !open, title: t("drawer.false_alarm_hint") },
    t("drawer.false_alarm"));
  falseAlarm.addEventListener("click", () =>
    act(alert.id, { action: "dismiss", note: reason.value.trim() || t("drawer.false_alarm_default") }, message));
  const snooze = el("button", { type: "button", id: "snooze-button", disabled: !open }, t("drawer.snooze"));
  snooze.addEventListener("click", () => {
    const until = snoozeAlert(alert.id, 15);
    message.className = "action-message";
    message.textContent = t("drawer.snoozed", { time: formatDate(until, "time") });
  });
  const camera = cameraOf(alert);
  const show = camera ? el("button", { type: "button", id: "camera-button" }, t("drawer.camera")) : null;
  show?.addEventListener("click", () => focusCamera(camera, { full: true }));
  return el(
    "div",
    { class: "drawer-actions" },
    ack,
    el("label", { for: "assign-unit" }, t("drawer.assign_to")),
    el("div", { class: "assign-row" }, select, assign),
    el("div", { class: "assign-row" }, reason, falseAlarm),
    el("p", { class: "muted" }, t("drawer.false_alarm_hint")),
    el("div", { class: "assign-row" }, snooze, show),
    clipControl(alert, { id: "clip-button" }),
    message,
  );
}

async function act(id, body, message) {
  message.textContent = "";
  message.className = "action-message";
  try {
    const updated = await api(`/api/alerts/${id}/actions`, { method: "POST", json: body });
    upsertAlert(updated);
    message.textContent = t("drawer.done");
    await openDrawer(id, { keepFocus: true });
  } catch (err) {
    message.textContent = err instanceof ApiError ? err.message : String(err);
    message.className = "action-message error-text";
  }
}

/** Show alert `id` in the drawer. */
export async function openDrawer(id, { keepFocus = false } = {}) {
  if (!keepFocus) returnFocus = document.activeElement;
  current = id;
  const body = document.getElementById("drawer-body");
  drawer().hidden = false;
  drawer().dataset.alertId = id;
  let alert;
  try {
    alert = await api(`/api/alerts/${id}`);
  } catch (err) {
    body.replaceChildren(el("p", { class: "error-text" }, err.message));
    return;
  }
  if (current !== id) return;
  upsertAlert(alert);
  drawer().dataset.status = alert.status;
  document.getElementById("drawer-title").textContent = alert.title;
  const ev = alert.evidence || {};
  const details = el(
    "dl",
    { class: "details" },
    field(t("drawer.severity"), el("span", { class: `sev sev-${alert.severity}` }, t(`severity.${alert.severity}`))),
    field(t("drawer.status"), t(`status.${alert.status}`)),
    field(t("drawer.unit"), unitName(alert.unit_id)),
    alert.assigned_unit_id ? field(t("drawer.assigned"), unitName(alert.assigned_unit_id)) : [],
    field(t("drawer.first_seen"), formatDate(alert.first_seen)),
    field(t("drawer.last_seen"), formatDate(alert.last_seen)),
    field(t("drawer.count"), String(alert.count)),
    ev.value !== undefined ? field(t("drawer.value"), `${ev.value}${ev.metric ? ` (${ev.metric})` : ""}`) : [],
  );
  const figure = el("div", { class: "evidence", id: "evidence" }, el("p", { class: "muted" }, t("loading")));
  const history = el(
    "ol",
    { class: "history" },
    (alert.audit || []).map((a) =>
      el("li", {}, el("time", {}, formatDate(a.at, "short")), " ", a.actor, ": ", a.action, a.note ? ` — ${a.note}` : ""),
    ),
  );
  body.replaceChildren(
    alert.description ? el("p", {}, alert.description) : "",
    details,
    actions(alert),
    el("h3", {}, t("drawer.evidence")),
    figure,
    el("h3", {}, t("drawer.history")),
    history,
  );
  if (!keepFocus) document.getElementById("drawer-close").focus();
  releaseImages();
  try {
    const urls = await evidenceImages(alert);
    if (current !== id) return;
    figure.replaceChildren(
      ...(urls.length ? urls.map((src) => el("img", { src, alt: `${t("drawer.evidence")}: ${alert.title}` })) : [el("p", { class: "muted" }, t("drawer.no_evidence"))]),
    );
  } catch (err) {
    figure.replaceChildren(el("p", { class: "muted" }, `${t("drawer.no_evidence")} (${err.message})`));
  }
}

export function closeDrawer() {
  drawer().hidden = true;
  current = null;
  releaseImages();
  returnFocus?.focus?.();
}

export function initDrawer() {
  document.getElementById("drawer-close").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !drawer().hidden) closeDrawer();
  });
}

/** The alert shown, so a live change can refresh the drawer. */
export function drawerAlertId() {
  return current;
}
