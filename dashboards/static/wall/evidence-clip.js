// Evidence clips: the few seconds of video the detector kept around a camera event (`ioc detect`,
// docs/incidents.md). A "Xem đoạn ghi" control on a camera alert, and on each camera signal of an
// incident, jumps to the camera on the wall and plays the clip in its tile. The clip is fetched with
// the bearer token (like the evidence images) and played from a blob: URL; it exists a few seconds
// after the event, so until then the control says it is still being saved; one still missing
// CLIP_LATE_MS after the event was dropped by the detector (queue full, stream lost) and is said so.
import { api, ApiError } from "../common/api.js";
import { el } from "../common/dom.js";
import { formatDate, t } from "../common/i18n.js";
import { playClip } from "./cameras.js";

const CLIP_LATE_MS = 2 * 60 * 1000;

/** The camera of a detector alert: its evidence is stored under evidence/<camera id>/ (ioc detect). */
export function cameraOf(alert) {
  if (!String(alert.kind || "").startsWith("camera.")) return null;
  const match = /^evidence\/([a-z0-9-]+)\//.exec(alert.evidence?.snapshot_ref || "");
  return match ? match[1] : null;
}

/** The clip control of a camera alert (a button and its status line), or null when it has no clip. */
export function clipControl(alert, { id } = {}) {
  const camera = cameraOf(alert);
  const ref = alert.evidence?.clip_ref;
  if (!camera || !ref) return null;
  const note = el("span", { class: "clip-message muted", role: "status" });
  const button = el("button", { type: "button", class: "clip-button", id, dataset: { alertId: alert.id, cameraId: camera } },
    t("clip.play"));
  button.addEventListener("click", async () => {
    note.textContent = t("loading");
    try {
      const blob = await api(`/api/media/${ref}`, { raw: true });
      const url = URL.createObjectURL(blob);
      if (!playClip(camera, url, t("clip.caption", { time: formatDate(alert.last_seen, "time") }))) {
        URL.revokeObjectURL(url);
        note.textContent = t("clip.no_camera");
        return;
      }
      note.textContent = t("clip.playing");
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        const late = Date.now() - Date.parse(alert.last_seen) > CLIP_LATE_MS;
        note.textContent = t(late ? "clip.missing" : "clip.pending");
      } else {
        note.textContent = err.message;
      }
    }
  });
  return el("span", { class: "clip-control" }, button, " ", note);
}
