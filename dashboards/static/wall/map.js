// The district map: unit polygons from /api/units (no tile server needed: it works offline),
// coloured by the most severe open alert in each unit; alerts with a position and devices drawn as
// markers coloured by severity / presence. A background tile layer is added only when the
// deployment sets IOC_MAP_TILE_URL (read from /api/ui-config).
import { t } from "../common/i18n.js";
import { openAlerts, rank, SEVERITIES } from "./alerts.js";
import { unitName, unitsGeoJSON } from "./units.js";

let map = null;
let unitLayer = null;
const alertLayer = () => (alertLayer.group ??= L.layerGroup());
const deviceLayer = () => (deviceLayer.group ??= L.layerGroup());
let devices = [];
let onAlertClick = () => {};
const OUTLINE_LEVELS = new Set(["province", "district"]);

/** Marker sizes follow the root font size, so they grow with the page on a 4K wall. */
function px(n) {
  return (n * parseFloat(getComputedStyle(document.documentElement).fontSize)) / 15;
}

function colour(name) {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || "#888";
}

/** Draw the map in `#map`; `config` is /api/ui-config. */
export function initMap(config, { onAlert } = {}) {
  onAlertClick = onAlert || onAlertClick;
  map = L.map("map", { zoomSnap: 0.25, attributionControl: Boolean(config.map_tile_url), preferCanvas: false });
  if (config.map_tile_url) L.tileLayer(config.map_tile_url, { maxZoom: 18 }).addTo(map);
  const drawn = unitsGeoJSON().features.filter((f) => f.geometry);
  // The district (or province) outline is drawn as a frame; the units inside it are what is coloured.
  const outer = drawn.filter((f) => OUTLINE_LEVELS.has(f.properties.level));
  const features = drawn.filter((f) => !OUTLINE_LEVELS.has(f.properties.level));
  if (outer.length) {
    L.geoJSON({ type: "FeatureCollection", features: outer }, {
      interactive: false,
      style: () => ({ color: colour("--accent"), weight: 3, fill: false, dashArray: "6 4" }),
    }).addTo(map);
  }
  unitLayer = L.geoJSON({ type: "FeatureCollection", features }, {
    style: () => ({ color: colour("--border"), weight: 1.5, fillColor: colour("--panel"), fillOpacity: 0.55 }),
    onEachFeature: (feature, layer) => {
      layer.bindTooltip(() => unitName(feature.id), { permanent: true, direction: "center", className: "unit-label" });
    },
  }).addTo(map);
  if (features.length) map.fitBounds(unitLayer.getBounds(), { padding: [8, 8] });
  alertLayer().addTo(map);
  deviceLayer().addTo(map);
  new ResizeObserver(() => {
    map.invalidateSize();
    if (features.length) map.fitBounds(unitLayer.getBounds(), { padding: [8, 8] });
  }).observe(document.getElementById("map"));
  renderLegend();
  refreshMap();
}

function renderLegend() {
  const legend = document.getElementById("map-legend");
  legend.replaceChildren(
    ...SEVERITIES.slice()
      .reverse()
      .map((s) => {
        const li = document.createElement("li");
        li.className = `sev sev-${s}`;
        li.textContent = t(`severity.${s}`);
        return li;
      }),
  );
}

/** Recolour units and redraw alert and device markers from the current state. */
export function refreshMap() {
  if (!map) return;
  const worst = new Map();
  const counts = new Map();
  for (const alert of openAlerts()) {
    for (const unit of new Set([alert.unit_id, alert.assigned_unit_id].filter(Boolean))) {
      counts.set(unit, (counts.get(unit) || 0) + 1);
      if (!worst.has(unit) || rank(alert.severity) > rank(worst.get(unit))) worst.set(unit, alert.severity);
    }
  }
  unitLayer.eachLayer((layer) => {
    const id = layer.feature.id;
    const severity = worst.get(id);
    layer.setStyle({
      fillColor: severity ? colour(`--sev-${severity}`) : colour("--panel"),
      fillOpacity: severity ? 0.6 : 0.45,
    });
    const el = layer.getElement?.();
    if (el) {
      el.dataset.unitId = id;
      el.dataset.severity = severity || "none";
      el.setAttribute("aria-label", `${unitName(id)}: ${severity ? t("map.worst", { severity: t(`severity.${severity}`) }) : t("map.no_alert")}`);
    }
    layer.setTooltipContent(severity ? `${unitName(id)} (${counts.get(id)})` : unitName(id));
  });
  alertLayer().clearLayers();
  for (const alert of openAlerts()) {
    if (alert.lat === null || alert.lat === undefined || alert.lon === null || alert.lon === undefined) continue;
    const marker = L.circleMarker([alert.lat, alert.lon], {
      radius: px(9), weight: px(3), color: "#ffffff", fillColor: colour(`--sev-${alert.severity}`), fillOpacity: 1,
    });
    marker.bindTooltip(alert.title || `#${alert.id}`);
    marker.on("click", () => onAlertClick(alert.id));
    alertLayer().addLayer(marker);
  }
  drawDevices();
}

function drawDevices() {
  deviceLayer().clearLayers();
  for (const device of devices) {
    if (device.lat === null || device.lon === null) continue;
    const marker = L.circleMarker([device.lat, device.lon], {
      radius: px(4), weight: 1, color: "#0d1520", fillColor: colour(`--presence-${device.state}`), fillOpacity: 0.95,
    });
    marker.bindTooltip(`${device.name} — ${t(`presence.${device.state}`)}`);
    deviceLayer().addLayer(marker);
  }
}

/** New device list from /api/devices. */
export function setDevices(list) {
  devices = list;
  if (map) drawDevices();
}
