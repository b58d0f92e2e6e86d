// The public warnings panel: the latest warnings with their delivery ledger per channel
// (GET /api/warnings, /api/warnings/{id}), refreshed on the live topic "warning" and every 30 s.
// For each warning, the latest CAP message's deliveries are counted per channel as "done/total"
// (done: delivered, acknowledged or played), with the failures and retries; the whole ledger
// downloads as CSV (GET /api/warnings/{id}/ledger?format=csv).
import { api } from "../common/api.js";
import { el } from "../common/dom.js";
import { t } from "../common/i18n.js";

const SHOWN = 4;
const DONE = new Set(["delivered", "acknowledged", "played"]);
const CHANNELS = ["radio", "wall", "console", "push", "email", "webhook"];

function summary(deliveries) {
  const latest = deliveries.length ? deliveries[deliveries.length - 1].cap_message_id : null;
  const mine = deliveries.filter((d) => d.cap_message_id === latest);
  return CHANNELS.map((channel) => {
    const rows = mine.filter((d) => d.channel === channel);
    if (!rows.length) return null;
    const done = rows.filter((d) => DONE.has(d.state)).length;
    const failed = rows.filter((d) => d.state === "failed").length;
    const retries = rows.reduce((n, d) => n + Math.max(0, d.attempts - 1), 0);
    const state = failed ? "failed" : done === rows.length ? "done" : "pending";
    const text = t("warn.channel", { channel: t(`warn.ch.${channel}`), done, total: rows.length })
      + (failed ? ` · ${t("warn.failed", { n: failed })}` : "") + (retries ? ` · ${t("warn.retries", { n: retries })}` : "");
    return el("span", { class: `warn-ch warn-${state}`, dataset: { channel } }, text);
  }).filter(Boolean);
}

async function downloadLedger(id) {
  const blob = await api(`/api/warnings/${id}/ledger`, { query: { format: "csv" }, raw: true });
  const link = el("a", { href: URL.createObjectURL(blob), download: `canh-bao-${id}-so-giao-nhan.csv` });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 5000);
}

export async function refreshWarnings() {
  const list = document.getElementById("warning-list");
  if (!list) return;
  let warnings;
  try {
    warnings = (await api("/api/warnings", { query: { limit: SHOWN } })).slice(0, SHOWN);
  } catch (err) {
    list.replaceChildren(el("li", { class: "muted" }, err.status === 404 ? t("no_data") : err.message));
    return;
  }
  if (!warnings.length) {
    list.replaceChildren(el("li", { class: "muted" }, t("warn.none")));
    return;
  }
  const details = await Promise.all(warnings.map((w) => api(`/api/warnings/${w.id}`).catch(() => null)));
  list.replaceChildren(
    ...warnings.map((w, i) => {
      const csv = el("button", { type: "button", class: "link" }, t("warn.ledger"));
      csv.addEventListener("click", () => downloadLedger(w.id).catch((err) => csv.replaceWith(el("span", { class: "error-text" }, err.message))));
      return el(
        "li",
        { class: `warning warning-${w.state}`, dataset: { warningId: w.id } },
        el("span", { class: "warning-title" }, `${t(`warn.state.${w.state}`)} · ${w.content.headline}`),
        el("span", { class: "warning-channels" }, ...summary(details[i]?.deliveries || [])),
        csv,
      );
    }),
  );
}
