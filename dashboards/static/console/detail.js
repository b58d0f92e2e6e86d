// The detail view of one alert or one report. Photos and evidence are staff-only routes that want
// the bearer token, which an <img src> cannot send: they are fetched and shown from blob: URLs.

import { accessToken } from "/common/api.js";
import { el } from "/common/dom.js";
import { formatDate, t } from "/common/i18n.js";

/** An <img> filled from an access-checked URL (placeholder text while loading or when refused). */
function protectedImage(url, alt, { link = false } = {}) {
  const img = el("img", { alt, class: "evidence", loading: "lazy" });
  const holder = link ? el("a", { href: "#", class: "photo-link" }, img) : img;
  fetch(url, { headers: { Authorization: `Bearer ${accessToken()}` } })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
    .then((blob) => {
      const src = URL.createObjectURL(blob);
      img.src = src;
      if (link) {
        holder.href = src;
        holder.target = "_blank";
        holder.rel = "noopener";
      }
    })
    .catch(() => img.replaceWith(el("span", { class: "muted", text: `${alt} (—)` })));
  return holder;
}

function facts(rows) {
  const dl = el("dl", { class: "facts" });
  for (const [label, value] of rows) {
    if (value === null || value === undefined || value === "") continue;
    dl.append(el("dt", { text: label }), el("dd", {}, value));
  }
  return dl;
}

function photoUrlOfRef(alertId, ref) {
  const match = /([0-9a-f]{64})\.[a-z]+$/.exec(ref || "");
  return match ? `/api/alerts/${alertId}/photos/${match[1]}` : null;
}

function auditList(alert) {
  const list = el("ol", { class: "timeline" });
  for (const entry of alert.audit || []) {
    const label = t(`audit.${entry.action}`) === `audit.${entry.action}` ? entry.action : t(`audit.${entry.action}`);
    const li = el("li", {},
      el("time", { datetime: entry.at, text: formatDate(entry.at, "datetime") }),
      el("strong", { text: `${label}` }),
      entry.to_status && entry.to_status !== entry.from_status ? ` → ${t(`status.${entry.to_status}`)}` : "",
      el("span", { class: "muted", text: ` · ${entry.actor}` }));
    if (entry.note) li.append(el("p", { class: "note", text: entry.note }));
    const url = photoUrlOfRef(alert.id, entry.photo_ref);
    if (url) li.append(protectedImage(url, t("detail.photo"), { link: true }));
    list.append(li);
  }
  return list;
}

/** The alert: facts, evidence, audit trail. */
export function renderAlertDetail(alert, { unitName, formatShort }) {
  const evidence = alert.evidence?.snapshot_ref
    ? protectedImage(`/api/media/${alert.evidence.snapshot_ref}`, t("detail.evidence"))
    : null;
  return el("article", { class: "detail-card" },
    el("h2", { tabindex: "-1", text: alert.title }),
    el("p", {},
      el("span", { class: `sev sev-${alert.severity}`, text: t(`severity.${alert.severity}`) }), " ",
      el("span", { class: `status status-${alert.status}`, id: "detail-status", text: t(`status.${alert.status}`) })),
    alert.description ? el("p", { class: "description", text: alert.description }) : null,
    facts([
      [t("detail.unit"), unitName(alert.unit_id)],
      [t("detail.assigned"), alert.assigned_unit_id && alert.assigned_unit_id !== alert.unit_id ? unitName(alert.assigned_unit_id) : null],
      [t("detail.first_seen"), formatShort(alert.first_seen)],
      [t("detail.last_seen"), formatShort(alert.last_seen)],
      [t("detail.count"), alert.count > 1 ? String(alert.count) : null],
    ]),
    evidence ? el("h3", { text: t("detail.evidence") }) : null,
    evidence,
    el("h3", { text: t("detail.audit") }),
    auditList(alert),
  );
}

/** The report: what the citizen sent, their contact, photos, replies, and its alert's history. */
export function renderReportDetail(report, alert, { unitName, categoryName, formatShort, merge }) {
  const contact = [report.reporter_name, report.reporter_phone, report.reporter_email].filter(Boolean).join(" · ");
  const photos = el("div", { class: "photos" },
    ...(report.media || []).filter((m) => m.kind === "photo")
      .map((m) => protectedImage(`${m.url}?thumb=true`, `${t("report.photos")} ${m.id}`, { link: true })));
  const replies = el("ol", { class: "timeline" },
    ...(report.replies || []).map((r) => el("li", {},
      el("time", { datetime: r.at, text: formatDate(r.at, "datetime") }),
      el("strong", { text: r.author }),
      el("span", { class: "muted", text: ` · ${t(r.public ? "report.reply_public" : "report.reply_internal")}` }),
      el("p", { class: "note", text: r.text }))));
  return el("article", { class: "detail-card" },
    el("h2", { tabindex: "-1", text: `${report.public_id} · ${categoryName(report.category)}` }),
    el("p", {},
      el("span", { class: `status report-${report.status}`, id: "detail-status", text: t(`report.${report.status}`) }),
      report.overdue ? el("span", { class: "overdue", text: ` · ${t("report.overdue")}` }) : null),
    el("p", { class: "description", text: report.description }),
    report.merged_into ? el("p", { class: "notice", text: t("report.merged", { id: report.merged_into }) }) : null,
    report.suggested_duplicate_of && !report.merged_into
      ? el("p", { class: "duplicate" },
          el("span", { text: t("report.duplicate", { id: report.suggested_duplicate_of }) }), " ",
          el("button", { type: "button", id: "merge-button", onclick: () => merge(report.id, report.suggested_duplicate_of),
            text: t("report.merge", { id: report.suggested_duplicate_of }) }))
      : null,
    facts([
      [t("report.created"), formatShort(report.created_at)],
      [t("report.due"), formatShort(report.due_at)],
      [t("detail.unit"), report.unit_id ? unitName(report.unit_id) : null],
      [t("report.address"), report.address],
      [t("report.location"), report.lat !== null && report.lat !== undefined ? `${report.lat.toFixed(5)}, ${report.lon.toFixed(5)}` : null],
      [t("report.contact"), contact || t("report.no_contact")],
      [t("report.rating"), report.rating ? `${report.rating}/5${report.rating_comment ? ` — ${report.rating_comment}` : ""}` : null],
    ]),
    report.media?.length ? el("h3", { text: t("report.photos") }) : null,
    report.media?.length ? photos : null,
    report.replies?.length ? el("h3", { text: t("report.replies") }) : null,
    report.replies?.length ? replies : null,
    alert ? el("h3", { text: t("detail.audit") }) : null,
    alert ? auditList(alert) : null,
  );
}
