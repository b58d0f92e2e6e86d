// KPI tiles with sparklines. Dossiers on time come with a real daily series (one figure per local
// day from /api/kpi/dossiers) over a period the wall picks (this month, this quarter, the year to
// date: what leaders report); the other tiles are sampled by the page every minute, so their
// sparkline is the trend since the wall was opened. Where there is no data (nothing resolved, no open
// report, no device expected to report, a source that does not exist yet such as the radio API
// answering 404) a tile says "chưa có dữ liệu", never "100 %" or "0".
import { api } from "../common/api.js";
import { el } from "../common/dom.js";
import { formatNumber, t, TIME_ZONE } from "../common/i18n.js";
import { openAlerts } from "./alerts.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_SAMPLES = 60;
const SECTOR_KINDS = /^(education|health|school|clinic|kpi)\./;
const tiles = new Map(); // key -> {value, series, note}
const PERIODS = ["month", "quarter", "year"];
let period = PERIODS.includes(localStorage.getItem("ioc.wall.dossierPeriod")) ? localStorage.getItem("ioc.wall.dossierPeriod") : "month";
// Devices that send heartbeats. Schools and clinics send one register a day, integrations (citizen
// reports, the one-stop system, news monitoring) send when something happens: their silence is not
// an outage, so they are not counted in device health.
const REPORTING_KINDS = new Set(["camera", "radio", "sensor"]);

/** YYYY-MM-DD of `date` in the district's time zone. */
function localDay(date) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: TIME_ZONE, year: "numeric", month: "2-digit", day: "2-digit" }).format(date);
}

function daysAgo(n) {
  return localDay(new Date(Date.now() - n * 86_400_000));
}

/** First local day of the picked period: this month, this quarter, or 1 January (year to date). */
function periodStart(today) {
  const [year, month] = today.split("-").map(Number);
  if (period === "year") return `${year}-01-01`;
  const first = period === "quarter" ? 3 * Math.floor((month - 1) / 3) + 1 : month;
  return `${year}-${String(first).padStart(2, "0")}-01`;
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
  const today = daysAgo(0);
  const whole = await api("/api/kpi/dossiers", { query: { from: periodStart(today), to: today } });
  const days = await Promise.all(
    [6, 5, 4, 3, 2, 1, 0].map((n) => api("/api/kpi/dossiers", { query: { from: daysAgo(n), to: daysAgo(n) } })),
  );
  // The district's total as the server computes it (summed counts, then the rate).
  const total = whole.levels?.district;
  const value = total ? total.on_time_rate : sumRate(whole.units);
  const note = total && total.resolved ? `${total.resolved_early + total.resolved_on_time}/${total.resolved}` : "";
  const tile = { value, series: days.map((d) => sumRate(d.units)).filter((v) => v !== null), note };
  tile.unit = "%";
  tiles.set("dossiers", tile);
}

async function reports() {
  const open = await api("/api/reports", { query: { status: "open", limit: 200 } });
  const within = open.filter((r) => !r.overdue).length;
  // No open report: nothing to be within its time (not "100 % (0/0)").
  sample("reports", open.length ? (100 * within) / open.length : null, open.length ? `${within}/${open.length}` : "");
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
  const enabled = devices.filter((d) => d.enabled && REPORTING_KINDS.has(d.kind));
  const online = enabled.filter((d) => d.state === "online").length;
  sample("devices", enabled.length ? (100 * online) / enabled.length : null, enabled.length ? `${online}/${enabled.length}` : "");
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
        key === "dossiers" ? periodPicker() : null,
        el("p", { class: "kpi-value" }, value),
        el("p", { class: "kpi-note muted" }, tile.note || ""),
        sparkline(tile.series),
      );
    }),
  );
}

/** The dossier tile's period: this month, this quarter, the year to date (kept in this browser). */
function periodPicker() {
  const select = el(
    "select",
    { class: "kpi-period", "aria-label": t("kpi.period") },
    ...PERIODS.map((p) => el("option", { value: p }, t(`kpi.period.${p}`))),
  );
  select.value = period;
  select.addEventListener("change", async () => {
    period = select.value;
    localStorage.setItem("ioc.wall.dossierPeriod", period);
    tiles.delete("dossiers");
    render();
    try {
      await dossiers();
    } catch (err) {
      console.warn("KPI:", err.message);
    }
    render();
  });
  return select;
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
