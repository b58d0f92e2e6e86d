// Public warnings on the commune console: the issued warnings routed to this commune, as banners on
// top of the lists, each with "Đã nhận" (POST /api/warnings/{id}/acknowledge), which the warning's
// ledger records as "acknowledged" for the commune. Refreshed on the live topic "warning"; a new
// one also notifies the phone.
import { api } from "/common/api.js";
import { el } from "/common/dom.js";
import { addStrings, t } from "/common/i18n.js";
import { notifyNew } from "./notify.js";

addStrings({
  vi: {
    "warning.issued": "Cảnh báo công cộng",
    "warning.ack": "Đã nhận",
    "warning.acked": "Đã xác nhận nhận cảnh báo",
    "warning.cancelled": "Cảnh báo đã được hủy: {headline}",
  },
  en: {
    "warning.issued": "Public warning",
    "warning.ack": "Received",
    "warning.acked": "Receipt confirmed",
    "warning.cancelled": "Warning cancelled: {headline}",
  },
});

const acked = new Set();

export async function refreshWarnings() {
  const box = document.getElementById("warning-banners");
  if (!box) return;
  let warnings = [];
  try {
    warnings = await api("/api/warnings", { query: { state: "issued", limit: 10 } });
  } catch {
    return;
  }
  box.replaceChildren(
    ...warnings.map((w) => {
      const button = el("button", { type: "button", class: "primary", disabled: acked.has(w.id) }, acked.has(w.id) ? t("warning.acked") : t("warning.ack"));
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await api(`/api/warnings/${w.id}/acknowledge`, { method: "POST" });
          acked.add(w.id);
          button.textContent = t("warning.acked");
        } catch (err) {
          button.replaceWith(el("span", { class: "error-text" }, err.message));
        }
      });
      return el(
        "li",
        { class: "warning-banner", role: "alert", dataset: { warningId: w.id } },
        el("strong", {}, `${t("warning.issued")}: ${w.content.headline}`),
        w.content.instruction ? el("span", {}, w.content.instruction) : null,
        button,
      );
    }),
  );
}

export function onWarningEvent(event, { phase }) {
  refreshWarnings();
  if (phase !== "live") return;
  const headline = event.data?.headline || "";
  const text = event.data?.msg_type === "Cancel" ? t("warning.cancelled", { headline }) : `${t("warning.issued")}: ${headline}`;
  notifyNew(text, { tag: `warning-${event.data?.warning_id}-${event.data?.msg_type}` });
}
