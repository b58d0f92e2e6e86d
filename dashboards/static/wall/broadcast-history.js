// Broadcast history on the wall: the recent broadcasts with their status, and for each the proof
// of broadcast per loudspeaker cluster (played in full, in part, not at all, and why), refreshed
// while it plays, with a stop button. After an urgent broadcast is sent the operator lands here,
// on its proof, instead of a message that vanished after 1.5 s.
import { api, ApiError } from "../common/api.js";
import { el } from "../common/dom.js";
import { addStrings, formatDate, t } from "../common/i18n.js";
import { unitName } from "./units.js";

addStrings({
  vi: {
    "history.open": "Lịch sử phát",
    "history.title": "Lịch sử phát thanh",
    "history.empty": "Chưa có buổi phát nào",
    "history.back": "Danh sách",
    "history.stop": "Dừng phát",
    "history.stopped": "Đã gửi lệnh dừng",
    "history.close": "Đóng",
    "history.summary": "Phát đủ {full} · một phần {partial} · không phát {none}",
    "history.cluster": "Cụm loa",
    "history.unit": "Xã",
    "history.outcome": "Kết quả",
    "history.reason": "Lý do",
    "outcome.full": "Đã phát đủ",
    "outcome.partial": "Phát một phần",
    "outcome.none": "Không phát",
    "bstatus.awaiting_confirmation": "Chờ xác nhận",
    "bstatus.proposed": "Đề xuất",
    "bstatus.pending": "Đang gửi lệnh",
    "bstatus.playing": "Đang phát",
    "bstatus.finished": "Đã phát xong",
    "bstatus.stopped": "Đã dừng",
    "bstatus.cancelled": "Đã huỷ",
  },
  en: {
    "history.open": "Broadcast history",
    "history.title": "Broadcast history",
    "history.empty": "No broadcast yet",
    "history.back": "List",
    "history.stop": "Stop",
    "history.stopped": "Stop command sent",
    "history.close": "Close",
    "history.summary": "Played in full {full} · in part {partial} · not played {none}",
    "history.cluster": "Cluster",
    "history.unit": "Commune",
    "history.outcome": "Outcome",
    "history.reason": "Reason",
    "outcome.full": "Played in full",
    "outcome.partial": "Played in part",
    "outcome.none": "Not played",
    "bstatus.awaiting_confirmation": "Awaiting confirmation",
    "bstatus.proposed": "Proposed",
    "bstatus.pending": "Sending",
    "bstatus.playing": "Playing",
    "bstatus.finished": "Finished",
    "bstatus.stopped": "Stopped",
    "bstatus.cancelled": "Cancelled",
  },
});

const LIVE = new Set(["pending", "playing"]);
const REFRESH_MS = 3000;
let timer = null;

const dialog = () => document.getElementById("broadcast-history");
const body = () => document.getElementById("broadcast-history-body");

function stopRefresh() {
  clearTimeout(timer);
  timer = null;
}

async function showList() {
  stopRefresh();
  let items = [];
  try {
    items = await api("/api/radio/broadcasts");
  } catch (err) {
    body().replaceChildren(el("p", { class: "error-text" }, err.message));
    return;
  }
  body().replaceChildren(
    items.length
      ? el(
          "ol",
          { class: "broadcast-list" },
          items.slice(0, 30).map((b) =>
            el(
              "li",
              { dataset: { broadcastId: b.id, status: b.status } },
              el("button", { type: "button", class: "link", onclick: () => showProof(b.id) }, b.title),
              el("span", { class: "muted" }, ` · ${t(`bstatus.${b.status}`)} · ${formatDate(b.started_at || b.created_at, "short")}`),
            ),
          ),
        )
      : el("p", { class: "muted" }, t("history.empty")),
  );
}

/** Show broadcast `id`'s proof per cluster; refreshed every 3 s while it plays. */
export async function showProof(id) {
  stopRefresh();
  if (!dialog().open) dialog().showModal();
  let proof;
  try {
    proof = await api(`/api/radio/broadcasts/${id}/proof`);
  } catch (err) {
    body().replaceChildren(el("p", { class: "error-text" }, err.message));
    return;
  }
  const message = el("p", { class: "action-message", role: "status" });
  const stop = LIVE.has(proof.status)
    ? el("button", { type: "button", class: "danger", id: "broadcast-stop", onclick: async () => {
        try {
          await api(`/api/radio/broadcasts/${id}/stop`, { method: "POST", json: {} });
          message.textContent = t("history.stopped");
          showProof(id);
        } catch (err) {
          message.textContent = err instanceof ApiError ? err.message : String(err);
          message.className = "action-message error-text";
        }
      } }, t("history.stop"))
    : "";
  body().replaceChildren(
    el("h3", { dataset: { broadcastId: proof.broadcast_id, status: proof.status } }, `${proof.title} — ${t(`bstatus.${proof.status}`)}`),
    el("p", { id: "broadcast-summary" }, t("history.summary", proof.summary)),
    el("div", { class: "dialog-actions" }, el("button", { type: "button", onclick: showList }, t("history.back")), stop),
    message,
    el(
      "table",
      { class: "proof-table", id: "broadcast-proof" },
      el("thead", {}, el("tr", {}, ["history.unit", "history.cluster", "history.outcome", "history.reason"].map((k) => el("th", {}, t(k))))),
      el(
        "tbody",
        {},
        proof.clusters.map((c) =>
          el(
            "tr",
            { dataset: { clusterId: c.cluster_id, outcome: c.outcome } },
            el("td", {}, unitName(c.unit_id)),
            el("td", {}, c.cluster_name),
            el("td", { class: `outcome-${c.outcome}` }, t(`outcome.${c.outcome}`)),
            el("td", {}, c.reason || ""),
          ),
        ),
      ),
    ),
  );
  if (LIVE.has(proof.status)) timer = setTimeout(() => dialog().open && showProof(id), REFRESH_MS);
}

export function initBroadcastHistory() {
  document.getElementById("broadcast-history-open").addEventListener("click", () => {
    dialog().showModal();
    showList();
  });
  document.getElementById("broadcast-history-close").addEventListener("click", () => dialog().close());
  dialog().addEventListener("close", stopRefresh);
}
