// A sensor's current value and its last 24 hours as a small SVG chart (no library, no canvas: the
// page keeps its strict Content-Security-Policy), drawn beside a sensor's alert or incident.
import { api } from "../common/api.js";
import { el } from "../common/dom.js";
import { formatDate, formatNumber, t } from "../common/i18n.js";

const SVG = "http://www.w3.org/2000/svg";
const UNITS = { water_level_cm: "cm", rain_mm_1h: "mm/h" };

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function chart(buckets) {
  const width = 320;
  const height = 80;
  const values = buckets.flatMap((b) => [b.min, b.max]);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const span = hi - lo || 1;
  const x = (i) => (buckets.length === 1 ? width / 2 : (i / (buckets.length - 1)) * (width - 4) + 2);
  const y = (v) => height - 4 - ((v - lo) / span) * (height - 8);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "readings-chart", role: "img" });
  const band = buckets.map((b, i) => `${x(i)},${y(b.max)}`).concat(buckets.map((b, i) => `${x(i)},${y(b.min)}`).reverse());
  root.append(svg("polygon", { points: band.join(" "), class: "readings-band" }));
  root.append(svg("polyline", { points: buckets.map((b, i) => `${x(i)},${y(b.avg)}`).join(" "), class: "readings-line" }));
  const last = buckets.length - 1;
  root.append(svg("circle", { cx: x(last), cy: y(buckets[last].avg), r: 4, class: "readings-now" }));
  return root;
}

/** An element that fills itself with `deviceId`'s `metric` over the last day. */
export function readingsChart(deviceId, metric, label) {
  const box = el("figure", { class: "readings", dataset: { deviceId, metric } }, el("p", { class: "muted" }, t("loading")));
  api(`/api/devices/${encodeURIComponent(deviceId)}/readings`, { query: { metric, hours: 24 } })
    .then((series) => {
      const unit = UNITS[metric] || "";
      const caption = el(
        "figcaption",
        {},
        el("strong", {}, label || deviceId),
        series.latest === null
          ? ` · ${t("readings.none")}`
          : ` · ${t("readings.now")}: ${formatNumber(series.latest, 1)} ${unit} (${formatDate(series.latest_at, "short")})`,
      );
      const picture = series.buckets.length ? chart(series.buckets) : el("p", { class: "muted" }, t("readings.none"));
      if (picture instanceof SVGElement) picture.setAttribute("aria-label", t("readings.label", { name: label || deviceId }));
      box.replaceChildren(caption, picture);
      box.dataset.latest = series.latest ?? "";
    })
    .catch((err) => box.replaceChildren(el("p", { class: "muted" }, `${t("readings.none")} (${err.message})`)));
  return box;
}
