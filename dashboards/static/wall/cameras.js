// Camera tiles: the latest annotated frame of each camera (the detector draws its detections on
// it), fetched every 2 s with the bearer token and shown as a blob: URL. A camera whose device is
// offline, or whose frame cannot be fetched, says so plainly instead of freezing on an old picture.
// Cameras with a picture come first; one without (no detector watching it) is asked again only
// every 30 s, so a district with many cameras does not flood the API with requests that fail.
// The operator picks a camera (click: it is shown large), cycles through the live ones, or shows one
// full screen; an alert's drawer jumps to its camera, and plays its evidence clip in the camera's tile
// (`playClip`, until "back to live"). The tiles never scroll: as many as fit the panel form a page
// (cameras with a picture first, the one picked pinned on top of every page), and "‹ Trang 1/3 ›"
// pages through the rest (a wall of 31 cameras showed 6 and hid 25 below a scroll). Above the tiles: how many cameras of each
// commune have a picture (availability), so dead cameras are seen as a figure, not only as tiles.
import { api } from "../common/api.js";
import { el } from "../common/dom.js";
import { formatDate, t } from "../common/i18n.js";
import { unitName } from "./units.js";

const REFRESH_MS = 2000;
const RETRY_MS = { "no-frame": 30_000, offline: 10_000 };
const CYCLE_MS = 8000;
// Keep in step with .cameras in wall.css (minmax(11rem, 1fr)): what a page can hold is computed from it.
const TILE_MIN_REM = 11;
const STATE_RANK = { live: 0, offline: 1, loading: 2, "no-frame": 3 };
const tiles = new Map(); // camera id -> {tile, img, caption, url, device, index, state}
let timer = null;
let cycleTimer = null;
let selected = null;
let page = 0;
let layoutQueued = false;

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
  entry.img.hidden = state !== "live" || Boolean(entry.clip);
  entry.nextTry = Date.now() + (RETRY_MS[state] || 0);
  queueLayout();
}

// ---- pages: as many tiles as fit, never a scroll -------------------------------------------------

/** The tiles in the order shown: the picked camera, then those with a picture, offline, the rest. */
function ordered() {
  const rank = (e) => STATE_RANK[e.state || "loading"] ?? 2;
  return [...tiles.values()].sort((a, b) =>
    (b.device.id === selected) - (a.device.id === selected) || rank(a) - rank(b) || a.index - b.index);
}

/** How many tiles fit the panel, and how tall the picked camera's picture may be (leaving a row). */
function capacity(box) {
  const gap = parseFloat(getComputedStyle(box).rowGap) || 0;
  const rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
  const width = box.clientWidth;
  const height = box.clientHeight;
  const cols = Math.max(1, Math.floor((width + gap) / (TILE_MIN_REM * rem + gap)));
  const caption = [...tiles.values()].map((e) => e.tile.querySelector("figcaption").offsetHeight).find((h) => h > 0) || 2 * rem;
  const tileHeight = ((width - gap * (cols - 1)) / cols) * 0.75 + caption;
  const rows = Math.max(1, Math.floor((height + gap) / (tileHeight + gap)));
  if (selected === null) return { perPage: cols * rows, big: 0 };
  const big = Math.max(0, Math.min(width * 0.75, height - caption - gap - tileHeight));
  const left = Math.max(0, Math.floor((height - big - caption + 1) / (tileHeight + gap)));
  return { perPage: Math.max(1, cols * left), big };
}

function queueLayout() {
  if (layoutQueued) return;
  layoutQueued = true;
  requestAnimationFrame(() => {
    layoutQueued = false;
    layout();
  });
}

/** Show the current page: the tiles in visual order in the DOM, the others hidden; the pager says where. */
function layout() {
  const box = document.getElementById("cameras");
  if (!box || !tiles.size || !box.clientHeight) return;
  const list = ordered();
  const { perPage, big } = capacity(box);
  box.style.setProperty("--camera-big-h", `${Math.floor(big)}px`);
  const pinned = selected !== null ? list.slice(0, 1) : [];
  const rest = list.slice(pinned.length);
  const pages = Math.max(1, Math.ceil(rest.length / perPage));
  page = Math.min(page, pages - 1);
  const shown = new Set([...pinned, ...rest.slice(page * perPage, (page + 1) * perPage)]);
  for (const entry of list) entry.tile.hidden = !shown.has(entry);
  const inDom = [...box.children];
  if (list.some((entry, i) => inDom[i] !== entry.tile)) box.append(...list.map((e) => e.tile));
  box.dataset.page = String(page + 1);
  box.dataset.pages = String(pages);
  const pager = document.getElementById("camera-pager");
  if (pager) {
    pager.hidden = pages < 2;
    document.getElementById("camera-page").textContent = t("cameras.page", { n: page + 1, total: pages });
  }
}

function turnPage(step) {
  const box = document.getElementById("cameras");
  const pages = Number(box?.dataset.pages || 1);
  page = (page + step + pages) % pages;
  layout();
}

/** Re-label the tiles after a language switch. */
export function rerenderCameras() {
  queueLayout();
  for (const b of ["prev", "next"]) document.getElementById(`camera-${b}`)?.setAttribute("aria-label", t(`cameras.${b}`));
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
      const full = el("button", { type: "button", class: "camera-full", title: t("cameras.fullscreen"),
        "aria-label": `${t("cameras.fullscreen")}: ${device.name}` }, "⛶");
      const tile = el(
        "figure",
        { class: "camera-tile", dataset: { cameraId: device.id, state: "loading" } },
        frame,
        el("figcaption", {}, el("span", { class: "camera-name" }, device.name), caption, full),
      );
      frame.addEventListener("click", () => selectCamera(selected === device.id ? null : device.id));
      full.addEventListener("click", () => fullScreen(device.id));
      entry = { tile, frame, img, caption, url: null, device, index: tiles.size };
      tiles.set(device.id, entry);
      box.append(tile);
    }
    entry.device = device;
  }
  if (!cameras.length) box.replaceChildren(el("p", { class: "muted" }, t("cameras.none")));
  controls();
  renderAvailability(cameras);
  queueLayout();
}

/** Show one camera large (null: none), the others stay as tiles. */
export function selectCamera(id) {
  selected = id && tiles.has(id) ? id : null;
  for (const [cid, entry] of tiles) entry.tile.classList.toggle("selected", cid === selected);
  document.getElementById("cameras").dataset.selected = selected || "";
  layout();
}

function fullScreen(id) {
  const entry = tiles.get(id);
  if (!entry) return;
  selectCamera(id);
  entry.tile.requestFullscreen?.().catch(() => {}); // refused without a user gesture: the tile stays large
}

/** Play an evidence clip (a blob: URL) in the camera's tile, shown large, with a button back to the live
 * picture; `label` says when the event was. Returns the <video>, or null for a camera not on the wall. */
export function playClip(id, url, label = "") {
  const entry = tiles.get(id);
  if (!entry) return null;
  stopClip(id);
  focusCamera(id);
  const video = el("video", { class: "camera-clip", src: url, autoplay: true, muted: true, loop: true,
    playsinline: true, controls: true, "aria-label": label, onclick: (event) => event.stopPropagation() });
  video.muted = true; // autoplay needs it; the clip has no sound anyway
  const back = el("button", { type: "button", class: "camera-live", onclick: () => stopClip(id) }, t("cameras.back_live"));
  const note = el("span", { class: "camera-clip-note" }, label);
  entry.clip = { url, video, back, note };
  entry.img.hidden = true;
  entry.tile.dataset.clip = "playing";
  entry.frame.append(video);
  entry.caption.after(note, back);
  video.play().catch(() => {}); // autoplay refused: the controls stay
  return video;
}

/** Back to the live picture: the clip's player goes and its blob: URL is released. */
export function stopClip(id) {
  const entry = tiles.get(id);
  if (!entry?.clip) return;
  entry.clip.video.pause();
  for (const node of [entry.clip.video, entry.clip.back, entry.clip.note]) node.remove();
  URL.revokeObjectURL(entry.clip.url);
  entry.clip = null;
  delete entry.tile.dataset.clip;
  entry.img.hidden = entry.state !== "live";
}

/** From an alert: bring its camera forward, large and in view (full screen on request). */
export function focusCamera(id, { full = false } = {}) {
  if (!tiles.has(id)) return false;
  stopCycle();
  selectCamera(id); // pinned on top of the page: in view without scrolling
  if (full) fullScreen(id);
  return true;
}

function stopCycle() {
  clearInterval(cycleTimer);
  cycleTimer = null;
  document.getElementById("camera-cycle")?.setAttribute("aria-pressed", "false");
}

function toggleCycle() {
  if (cycleTimer) return stopCycle();
  const next = () => {
    const live = [...tiles.values()].filter((e) => e.state === "live").map((e) => e.device.id);
    const ids = live.length ? live : [...tiles.keys()];
    if (!ids.length) return;
    selectCamera(ids[(ids.indexOf(selected) + 1) % ids.length]);
  };
  next();
  cycleTimer = setInterval(next, CYCLE_MS);
  document.getElementById("camera-cycle").setAttribute("aria-pressed", "true");
}

function controls() {
  if (document.getElementById("camera-controls")) return;
  const cycle = el("button", { type: "button", id: "camera-cycle", "aria-pressed": "false" }, t("cameras.cycle"));
  cycle.addEventListener("click", toggleCycle);
  const pager = el("span", { id: "camera-pager", class: "camera-pager", hidden: true },
    el("button", { type: "button", id: "camera-prev", "aria-label": t("cameras.prev"), onclick: () => turnPage(-1) }, "‹"),
    el("span", { id: "camera-page", "aria-live": "polite" }),
    el("button", { type: "button", id: "camera-next", "aria-label": t("cameras.next"), onclick: () => turnPage(1) }, "›"));
  const box = document.getElementById("cameras");
  box.before(el("div", { id: "camera-controls", class: "camera-controls" }, cycle, pager,
    el("p", { id: "camera-availability", class: "camera-availability" })));
  window.addEventListener("resize", queueLayout);
}

/** Cameras with a picture per commune: "Trà My 8/10". */
function renderAvailability(cameras) {
  const byUnit = new Map();
  for (const d of cameras) {
    const [up, all] = byUnit.get(d.unit_id) || [0, 0];
    byUnit.set(d.unit_id, [up + (d.state === "offline" ? 0 : 1), all + 1]);
  }
  const target = document.getElementById("camera-availability");
  if (!target) return;
  const items = [...byUnit].sort((a, b) => a[1][0] / a[1][1] - b[1][0] / b[1][1]);
  target.replaceChildren(t("cameras.availability"), " ", ...items.map(([unit, [up, all]]) =>
    el("span", { class: `availability${up < all ? " degraded" : ""}`, dataset: { unitId: unit } },
      `${unitName(unit)} ${up}/${all}`)));
}

/** Presence of one camera changed (live event): show it at once. */
export function cameraPresence(deviceId, state) {
  const entry = tiles.get(deviceId);
  if (!entry) return;
  entry.device = { ...entry.device, state };
  entry.nextTry = 0;
  refreshTile(entry);
  renderAvailability([...tiles.values()].map((e) => e.device));
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
