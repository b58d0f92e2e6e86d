// Camera tiles: the latest annotated frame of each camera (the detector draws its detections on
// it), fetched every 2 s with the bearer token and shown as a blob: URL. A camera whose device is
// offline, or whose frame cannot be fetched, says so plainly instead of freezing on an old picture.
// Cameras with a picture come first; one without (no detector watching it) is asked again only
// every 30 s, so a district with many cameras does not flood the API with requests that fail.
import { api } from "../common/api.js";
import { el } from "../common/dom.js";
import { formatDate, t } from "../common/i18n.js";
import { unitName } from "./units.js";

const REFRESH_MS = 2000;
const RETRY_MS = { "no-frame": 30_000, offline: 10_000 };
const tiles = new Map(); // camera id -> {tile, img, caption, url, device}
let timer = null;

const NOTES = { offline: "cameras.offline", "no-frame": "cameras.no_frame", loading: "loading" };

function label(entry) {
  return entry.state === "live" ? formatDate(entry.shownAt, "time") : t(NOTES[entry.state] || "loading");
}

function setState(entry, state) {
  entry.state = state;
  if (state === "live") entry.shownAt = new Date();
  entry.tile.dataset.state = state;
  entry.caption.textContent = label(entry);
  entry.frame.dataset.label = state === "live" ? "" : label(entry);
  entry.img.hidden = state !== "live";
  entry.tile.style.order = state === "live" ? "0" : state === "offline" ? "1" : "2";
  entry.nextTry = Date.now() + (RETRY_MS[state] || 0);
}

/** Re-label the tiles after a language switch. */
export function rerenderCameras() {
  for (const entry of tiles.values()) {
    if (!entry.state) continue;
    entry.caption.textContent = label(entry);
    entry.frame.dataset.label = entry.state === "live" ? "" : label(entry);
  }
}

async function refreshTile(entry) {
  if (entry.device.state === "offline") {
    setState(entry, "offline");
    return;
  }
  try {
    const blob = await api(`/api/cameras/${entry.device.id}/latest.jpg`, { raw: true });
    if (!blob.size) throw new Error("empty");
    const url = URL.createObjectURL(blob);
    await new Promise((resolve, reject) => {
      entry.img.onload = resolve;
      entry.img.onerror = reject;
      entry.img.src = url;
    });
    if (entry.url) URL.revokeObjectURL(entry.url);
    entry.url = url;
    setState(entry, "live");
  } catch (err) {
    setState(entry, err.status === 404 ? "no-frame" : "offline");
  }
}

/** Build or update the tiles from the camera devices (from /api/devices). */
export function setCameras(devices) {
  const box = document.getElementById("cameras");
  const cameras = devices.filter((d) => d.kind === "camera" && d.enabled);
  for (const device of cameras) {
    let entry = tiles.get(device.id);
    if (!entry) {
      const img = el("img", { alt: `${device.name} (${unitName(device.unit_id)})`, hidden: true });
      const caption = el("span", { class: "camera-state" }, t("loading"));
      const frame = el("div", { class: "camera-frame" }, img);
      const tile = el(
        "figure",
        { class: "camera-tile", dataset: { cameraId: device.id, state: "loading" } },
        frame,
        el("figcaption", {}, el("span", { class: "camera-name" }, device.name), caption),
      );
      entry = { tile, frame, img, caption, url: null, device };
      tiles.set(device.id, entry);
      box.append(tile);
    }
    entry.device = device;
  }
  if (!cameras.length) box.replaceChildren(el("p", { class: "muted" }, t("cameras.none")));
}

/** Presence of one camera changed (live event): show it at once. */
export function cameraPresence(deviceId, state) {
  const entry = tiles.get(deviceId);
  if (!entry) return;
  entry.device = { ...entry.device, state };
  entry.nextTry = 0;
  refreshTile(entry);
}

export function startCameras() {
  clearInterval(timer);
  const tick = () => {
    if (document.hidden) return;
    const now = Date.now();
    for (const entry of tiles.values()) if (!entry.nextTry || entry.nextTry <= now) refreshTile(entry);
  };
  tick();
  timer = setInterval(tick, REFRESH_MS);
}
