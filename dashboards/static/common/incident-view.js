// One incident as people read it, shared by the wall's drawer and the commune console: its facts,
// checklist, signals and timeline, in the glossary's words (docs/glossary.md). Each page keeps its
// own frame (the wall's drawer, the console's detail column) and passes what differs: how a unit is
// named, what a click on a signal opens, whether a step may be ticked.
import "./incident-strings.js";
import { el } from "./dom.js";
import { formatDate, lang, t } from "./i18n.js";

const ALERT_ACTIONS = ["created", "acknowledge", "start", "resolve", "close", "dismiss", "reopen", "comment", "assign",
  "escalate", "report"];

/** How the timeline names who did something: people by their user name, the platform as "Hệ thống". */
export function actorName(actor) {
  if (actor === "system" || actor?.startsWith("rule:")) return t("actor.system");
  if (actor === "citizen") return t("actor.citizen");
  return actor || "";
}

/** A checklist step's text in the current language. */
function stepText(step) {
  return (lang() === "en" && step.text_en) || step.text;
}

/** One timeline entry in words ("Hoàn thành bước: Báo chủ tịch xã", "Tiếp nhận cảnh báo #12"). */
export function timelineText(entry, incident) {
  const data = entry.data || {};
  if (entry.source === "alert") {
    return t(ALERT_ACTIONS.includes(entry.action) ? `ev.alert.${entry.action}` : "ev.alert.other", { ref: entry.ref });
  }
  if (entry.source === "broadcast") return t("ev.broadcast", { ref: entry.ref, title: entry.note || "" });
  const id = data.into ?? data.from ?? "";
  const found = incident.checklist.find((s) => s.id === data.step);
  const step = found ? stepText(found) : data.step || "";
  const role = data.role ? t(`role.${data.role}`) : "";
  const n = Array.isArray(data.alerts) ? data.alerts.length : "";
  return t(`ev.${entry.action}`, { title: data.title || "", id, step, who: data.username || "", role, n });
}

/** "Trà Kót + Trà Sơn": the lead commune (or the district) and the helping ones, for a queue row. */
export function incidentUnits(incident, unitName) {
  const lead = incident.lead_unit_id ? unitName(incident.lead_unit_id) : t("incidents.district");
  const helpers = incident.helper_unit_ids || [];
  return helpers.length ? `${lead} + ${helpers.map(unitName).join(", ")}` : lead;
}

/** Severity, status, lead and helping communes, first and latest signal. */
export function incidentFacts(incident, { unitName, className = "details" }) {
  const lead = incident.lead_unit_id ? unitName(incident.lead_unit_id) : t("incidents.district");
  const field = (label, value) => [el("dt", {}, label), el("dd", {}, value ?? "–")];
  return el(
    "dl",
    { class: className },
    field(t("incidents.severity"), el("span", { class: `sev sev-${incident.severity}` }, t(`severity.${incident.severity}`))),
    field(t("incidents.status"), el("span", { id: "incident-status", dataset: { status: incident.status } },
      t(`incident_status.${incident.status}`))),
    field(t("incidents.lead"), lead),
    incident.helper_unit_ids.length ? field(t("incidents.helpers"), incident.helper_unit_ids.map(unitName).join(", ")) : [],
    field(t("incidents.first"), formatDate(incident.first_signal_at)),
    field(t("incidents.last"), formatDate(incident.last_signal_at)),
  );
}

/** The standard steps: done ones say by whom and when; `onStep(stepId)` (when given) ticks one. */
export function incidentChecklist(incident, { onStep } = {}) {
  return el(
    "ol",
    { class: "checklist", id: "incident-checklist" },
    incident.checklist.map((step) =>
      el(
        "li",
        { dataset: { step: step.id, done: step.done_at ? "true" : "false" } },
        el("span", { class: "step-text" }, stepText(step)),
        step.done_at
          ? el("span", { class: "muted" }, ` — ${t("incidents.step_done")}: ${t("incidents.step_by", { who: actorName(step.done_by), when: formatDate(step.done_at, "short") })}`)
          : onStep
            ? el("button", { type: "button", class: "step-button", onclick: () => onStep(step.id) }, t("incidents.step_mark"))
            : "",
      ),
    ),
  );
}

/** The signals: each alert a button (`onOpenAlert(id)`), broadcasts as text, with place, time, status. */
export function incidentSignals(incident, { unitName, onOpenAlert }) {
  return el(
    "ul",
    { class: "incident-signals" },
    incident.signals.map((s) =>
      el(
        "li",
        { dataset: { signal: s.signal, ref: s.ref, status: s.status || "" } },
        s.signal === "alert"
          ? el("button", { type: "button", class: "link", onclick: () => onOpenAlert(s.ref) }, s.title || `#${s.ref}`)
          : el("span", {}, `${t("signal.broadcast")}: ${s.title || `#${s.ref}`}`),
        el("span", { class: "muted" }, ` · ${s.unit_ids.map(unitName).join(", ")} · ${formatDate(s.at, "short")}`),
        s.status ? el("span", { class: `status status-${s.status}` }, ` · ${t(`status.${s.status}`)}`) : "",
      ),
    ),
  );
}

/** The timeline, oldest first: time, who, what (and the note). */
export function incidentTimeline(incident, { className = "history" } = {}) {
  return el(
    "ol",
    { class: className, id: "incident-timeline" },
    incident.timeline.map((entry) =>
      el(
        "li",
        { dataset: { action: entry.action, source: entry.source, actor: entry.actor } },
        el("time", { datetime: entry.at }, formatDate(entry.at, "short")),
        ` ${actorName(entry.actor)}: ${timelineText(entry, incident)}`,
        entry.note && entry.source !== "broadcast" ? ` — ${entry.note}` : "",
      ),
    ),
  );
}

/** Alerts of the incident nobody has taken yet (what "Tiếp nhận" would take). */
export function newAlertCount(incident) {
  return incident.signals.filter((s) => s.signal === "alert" && s.status === "new").length;
}
