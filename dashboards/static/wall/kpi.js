// KPI tiles with sparklines. Dossiers on time come with a real daily series (one figure per local
// day from /api/kpi/dossiers); the other tiles are sampled by the page every minute, so their
// sparkline is the trend since the wall was opened. A source that does not exist yet (the radio
// API answering 404) shows "chưa có dữ liệu" instead of failing the wall.
import { api } from "../common/api.js";
import { el } from "../common/dom.js";
import { formatNumber, t, TIME_ZONE } from "../common/i18n.js";
import { openAlerts } from "./alerts.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_SAMPLES = 60;
const SECTOR_KINDS = /^(education|health|school|clinic|kpi)\./;
const tiles = new Map(); // key -> {value, series, note}

/** YYYY-MM-DD of `date` in the district's time zone. */
function localDay(date) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: TIME_ZONE, year: "numeric", month: "2-digit", day: "2-digit" }).format(date);
}

function daysAgo(n) {
  return localDay(new Date(Date.now() - n * 86_400_000));
}

function sample(key, value, note = "") {
  const tile = tiles.get(key) || { series: [] };
  tile.value = value;
  tile.note = note;
  if (value !== null && value !== undefined) tile.series = [...tile.series, value].slice(-MAX_SAMPLES);
  tiles.set(key, tile);
}

function sumRate(units) {
  let good = 0;
  let resolved = 0;
  for (const figures of Object.values(units || {})) {
    good += (figures.resolved_early || 0) + (figures.resolved_on_time || 0);
    resolved += figures.resolved || 0;
  }
  return resolved ? (100 * good) / resolved : null;
}

async function dossiers() {
  const month = await api("/api/kpi/dossiers", { query: { from: daysAgo(29), to: daysAgo(0) } });
  const days = await Promise.all(
    [6, 5, 4, 3, 2, 1, 0].map((n) => api("/api/kpi/dossiers", { query: { from: daysAgo(n), to: daysAgo(n) } })),
  );
  const tile = { value: sumRate(month.units), series: days.map((d) => sumRate(d.units)).filter((v) => v !== null), note: "" };
  tile.unit = "%";
  tiles.set("dossiers", tile);
}

async function reports() {
  const open = await api("/api/reports", { query: { status: "open", limit: 200 } });
  const within = open.filter((r) => !r.overdue).length;
  sample("reports", open.length ? (100 * within) / open.length : 100, `${within}/${open.length}`);
  tiles.get("reports").unit = "%";
}

async function radio() {
  try {
    const status = await api("/api/radio/status");
    const total = status.reduce((n, u) => n + (u.clusters_total || 0), 0);
    const online = status.reduce((n, u) => n + (u.online || 0), 0);
    sample("radio", total ? (100 * online) / total : null, `${online}/${total}`);
    tiles.get("radio").unit = "%";
  } catch (err) {
    if (err.status !== 404) throw err;
    sample("radio", null, t("no_data"));
  }
}

/** Device health from the device list the wall already holds. */
export function devicesSample(devices) {
  const enabled = devices.filter((d) => d.enabled);
  const online = enabled.filter((d) => d.state === "online").length;
  sample("devices", enabled.length ? (100 * online) / enabled.length : null, `${online}/${enabled.length}`);
  tiles.get("devices").unit = "%";
  render();
}

function sectors(push = true) {
  const n = openAlerts().filter((a) => SECTOR_KINDS.test(a.kind || "")).length;
  if (push || !tiles.has("sectors")) sample("sectors", n, "");
  else tiles.get("sectors").value = n;
  tiles.get("sectors").unit = "";
}

function sparkline(series) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 100 30");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("aria-hidden", "true");
  if (series.length < 2) return svg;
  const lo = Math.min(...series);
  const hi = Math.max(...series);
  const span = hi - lo || 1;
  const points = series.map((v, i) => `${((100 * i) / (series.length - 1)).toFixed(1)},${(28 - (26 * (v - lo)) / span).toFixed(1)}`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "currentColor");
  line.setAttribute("stroke-width", "2");
  line.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(line);
  return svg;
}

const ORDER = ["dossiers", "reports", "radio", "devices", "sectors"];

function render() {
  const box = document.getElementById("kpis");
  box.replaceChildren(
    ...ORDER.map((key) => {
      const tile = tiles.get(key) || { series: [], value: null, note: t("loading") };
      const value = tile.value === null || tile.value === undefined ? t("no_data") : `${formatNumber(tile.value, tile.unit === "%" ? 1 : 0)}${tile.unit || ""}`;
      return el(
        "div",
        { class: "kpi-tile", dataset: { kpi: key } },
        el("h3", {}, t(`kpi.${key}`)),
        el("p", { class: "kpi-value" }, value),
        el("p", { class: "kpi-note muted" }, tile.note || ""),
        sparkline(tile.series),
      );
    }),
  );
}

async function refresh() {
  const jobs = [dossiers(), reports(), radio()];
  for (const result of await Promise.allSettled(jobs)) {
    if (result.status === "rejected") console.warn("KPI:", result.reason?.message || result.reason);
  }
  sectors();
  render();
}

export function startKpis() {
  render();
  refresh();
  setInterval(refresh, 60_000);
}

export function rerenderKpis() {
  sectors(false);
  render();
}
