// The radio panel: each commune's loudspeaker clusters (online / total, playing) from
// /api/radio/status, and the urgent broadcast form. Sending is two steps: the form, then an
// explicit confirmation in the same dialog. When the district's policy wants a second person, the
// server holds the broadcast as `awaiting_confirmation`: it is listed here and another operator
// confirms it (POST /api/radio/broadcasts/{id}/confirm); its requester cannot.
// Until the radio API exists (404) the panel says "chưa có dữ liệu".
import { api, currentUser } from "../common/api.js";
import { el } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { showProof } from "./broadcast-history.js";
import { communes, unitName } from "./units.js";

let status = null; // null: not loaded or no radio API
// Vietnamese alphabetical order (Đ after D, tones after the base letter), not code points.
const collator = new Intl.Collator("vi", { sensitivity: "base" });

async function refreshPending() {
  const box = document.getElementById("radio-pending");
  let pending = [];
  try {
    pending = (await api("/api/radio/broadcasts")).filter((b) => b.status === "awaiting_confirmation");
  } catch {
    pending = [];
  }
  const me = currentUser()?.username;
  box.replaceChildren(
    ...pending.map((b) => {
      const button = el("button", { type: "button", class: "danger", disabled: b.requested_by === me }, t("radio.confirm"));
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await api(`/api/radio/broadcasts/${b.id}/confirm`, { method: "POST", json: {} });
        } catch (err) {
          button.replaceWith(el("span", { class: "error-text" }, err.message));
          return;
        }
        refreshRadio();
      });
      return el(
        "li",
        { class: "radio-pending", dataset: { broadcastId: b.id } },
        el("span", {}, t("radio.pending", { title: b.title, by: b.requested_by || "?" })),
        button,
      );
    }),
  );
}

export async function refreshRadio() {
  refreshPending();
  const list = document.getElementById("radio-status");
  try {
    status = await api("/api/radio/status");
  } catch (err) {
    status = null;
    list.replaceChildren(el("li", { class: "muted" }, err.status === 404 ? t("no_data") : err.message));
    return;
  }
  const name = (u) => unitName(u.unit_id) || u.unit_name;
  list.replaceChildren(
    ...[...status].sort((a, b) => collator.compare(name(a), name(b))).map((u) => {
      const state = u.clusters_total && u.online === u.clusters_total ? "online" : u.online ? "partial" : "offline";
      return el(
        "li",
        { class: `radio-unit radio-${state}`, dataset: { unitId: u.unit_id } },
        el("span", { class: "radio-name" }, name(u)),
        u.playing || u.active_broadcast_id
          ? el("span", { class: "radio-playing", title: t("radio.playing"), "aria-label": t("radio.playing") }, "▶")
          : null,
        el("span", { class: `presence-${state === "partial" ? "unknown" : state}`, title: t("radio.online_long", { online: u.online, total: u.clusters_total }) },
          t("radio.online", { online: u.online, total: u.clusters_total })),
      );
    }),
  );
}

export function initRadio() {
  const dialog = document.getElementById("broadcast-dialog");
  const form = document.getElementById("broadcast-form");
  const confirmText = document.getElementById("broadcast-confirm-text");
  const submit = document.getElementById("broadcast-submit");
  const error = document.getElementById("broadcast-error");
  const select = document.getElementById("broadcast-units");
  let confirming = false;

  const reset = () => {
    confirming = false;
    confirmText.hidden = true;
    submit.textContent = t("radio.send");
    error.textContent = "";
  };

  document.getElementById("broadcast-open").addEventListener("click", () => {
    select.replaceChildren(...communes().map((u) => el("option", { value: u.id }, unitName(u.id))));
    reset();
    dialog.showModal();
  });
  document.getElementById("broadcast-cancel").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", reset);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const units = [...select.selectedOptions].map((o) => o.value);
    const title = document.getElementById("broadcast-title-input").value.trim();
    const text = document.getElementById("broadcast-text").value.trim();
    const repeat = Number(document.getElementById("broadcast-repeat").value) || 1;
    if (!confirming) {
      confirming = true;
      confirmText.textContent = t("radio.confirm_text", { title, n: units.length, repeat });
      confirmText.hidden = false;
      submit.textContent = t("radio.confirm");
      submit.focus();
      return;
    }
    submit.disabled = true;
    error.textContent = "";
    try {
      const created = await api("/api/radio/broadcasts", { method: "POST", json: { title, text, unit_ids: units, repeat, urgent: true } });
      error.textContent =
        created.status === "awaiting_confirmation" ? t("radio.awaiting") : t("radio.sent", { status: created.status || "" });
      form.reset();
      refreshRadio();
      if (created.status !== "awaiting_confirmation") {
        // Straight to the proof of broadcast: the operator watches each cluster answer.
        dialog.close();
        showProof(created.id);
      } else {
        setTimeout(() => dialog.close(), 2500);
      }
    } catch (err) {
      error.textContent = err.status === 404 ? t("no_data") : err.message;
    } finally {
      submit.disabled = false;
    }
  });
}
