// The citizen page (/phan-anh/): send a report with photos and a place, get a tracking code, follow
// it, rate the answer. No login; everything goes through the public API (/api/public/...), which
// rate-limits and checks every photo again: the checks here only spare the citizen a wasted upload.

import { api, newIdempotencyKey, ApiError } from "/common/api.js";
import { addStrings, applyTranslations, bindLangToggle, formatDate, lang, onLangChange, t } from "/common/i18n.js";
import { unitAt } from "./geo.js";
import { PhotoPicker } from "./photos.js";
import { STRINGS } from "./strings.js";

addStrings(STRINGS);

const $ = (id) => document.getElementById(id);
const state = {
  categories: [],
  units: null, // GeoJSON FeatureCollection
  location: null, // {lat, lon}
  locationNote: null, // {key, params} of the last location message (re-rendered on language change)
  lookup: null, // the last looked-up report
  map: null,
  marker: null,
};

function unitName(unitId) {
  const feature = state.units?.features?.find((f) => f.id === unitId || f.properties?.id === unitId);
  if (!feature) return unitId || "";
  const p = feature.properties || {};
  return lang() === "en" && p.name_en ? p.name_en : p.name;
}

function categoryName(id) {
  const c = state.categories.find((x) => x.id === id);
  if (!c) return id;
  return lang() === "en" ? c.name_en : c.name;
}

function problemText(err, fallbackKey = "error.generic") {
  if (err instanceof ApiError) {
    if (err.status === 429) return t("send.rate_limited", { s: err.problem.retry_after_s ?? 60 });
    if (err.status === 413) return t("send.too_large");
    return err.message;
  }
  return t(fallbackKey);
}

// ---- views -------------------------------------------------------------------------------------

function route() {
  let hash = location.hash.replace(/^#/, "");
  try {
    hash = decodeURIComponent(hash);
  } catch {
    /* a mangled link: use it as typed */
  }
  const lookup = hash.startsWith("tra-cuu");
  $("view-send").hidden = lookup;
  $("view-lookup").hidden = !lookup;
  $("tab-send").toggleAttribute("aria-current", !lookup);
  $("tab-lookup").toggleAttribute("aria-current", lookup);
  if (lookup) {
    const code = hash.split("/")[1];
    if (code) {
      $("lookup-code").value = code;
      lookUp(code);
    }
  } else if (state.map) {
    setTimeout(() => state.map.invalidateSize(), 0);
  }
}

// ---- categories --------------------------------------------------------------------------------

function renderCategories() {
  const box = $("categories");
  const chosen = box.querySelector("input:checked")?.value;
  box.replaceChildren(
    ...state.categories.map((c) => {
      const label = document.createElement("label");
      label.className = "choice";
      const input = document.createElement("input");
      input.type = "radio";
      input.name = "category";
      input.value = c.id;
      input.required = true;
      input.checked = c.id === chosen;
      const text = document.createElement("span");
      text.textContent = lang() === "en" ? c.name_en : c.name;
      label.append(input, text);
      return label;
    }),
  );
}

async function loadCategories() {
  try {
    state.categories = await api("/api/public/report-categories", { auth: false });
    renderCategories();
  } catch (err) {
    $("categories").replaceChildren(Object.assign(document.createElement("p"), { className: "error", textContent: problemText(err) }));
  }
}

// ---- location ----------------------------------------------------------------------------------

function showLocationNote(key, params = {}) {
  state.locationNote = { key, params };
  $("location-status").textContent = t(key, params);
}

function setLocation(lat, lon) {
  state.location = { lat: Number(lat.toFixed(6)), lon: Number(lon.toFixed(6)) };
  const unit = unitAt(state.units, lat, lon);
  const where = { lat: lat.toFixed(5), lon: lon.toFixed(5) };
  if (unit && unit.properties?.level !== "district") {
    showLocationNote("location.chosen", { ...where, unit: unitName(unit.properties.id) });
  } else {
    showLocationNote("location.outside", where);
  }
  if (state.map && window.L) {
    if (state.marker) state.marker.setLatLng([lat, lon]);
    else state.marker = window.L.circleMarker([lat, lon], { radius: 10, color: "#b3261e", weight: 3, fillOpacity: 0.6 }).addTo(state.map);
  }
}

function useMyLocation() {
  if (!navigator.geolocation) {
    showLocationNote("location.unsupported");
    return;
  }
  showLocationNote("location.finding");
  navigator.geolocation.getCurrentPosition(
    (pos) => {
      setLocation(pos.coords.latitude, pos.coords.longitude);
      // With background tiles a closer look helps; over the bare polygons it would show nothing.
      const here = [pos.coords.latitude, pos.coords.longitude];
      if (state.tiles) state.map?.setView(here, Math.max(state.map.getZoom(), 14));
      else if (state.map && !state.map.getBounds().contains(here)) state.map.panTo(here);
    },
    (err) => showLocationNote("location.denied", { reason: err.message || err.code }),
    { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 },
  );
}

async function initMap() {
  try {
    state.units = await api("/api/units", { auth: false });
  } catch {
    state.units = { type: "FeatureCollection", features: [] };
  }
  const L = window.L;
  if (!L) {
    $("map").replaceChildren(Object.assign(document.createElement("p"), { className: "hint", textContent: t("map.missing") }));
    $("map").classList.add("map-missing");
    return;
  }
  const map = L.map("map", { zoomControl: true, attributionControl: false, zoomSnap: 0.25 });
  state.map = map;
  try {
    const config = await api("/api/ui-config", { auth: false });
    if (config?.map_tile_url) {
      L.tileLayer(config.map_tile_url, { maxZoom: 18 }).addTo(map);
      state.tiles = true;
    }
  } catch {
    /* no config route: the polygons alone are the map (works without internet) */
  }
  const leaves = state.units.features.filter((f) => f.geometry && f.properties?.level !== "district" && f.properties?.level !== "province");
  const district = state.units.features.filter((f) => f.geometry && f.properties?.level === "district");
  const outline = L.geoJSON(district, { style: { color: "#1d3557", weight: 2, fill: false }, interactive: false }).addTo(map);
  const layer = L.geoJSON(leaves, {
    style: (f) => ({ color: "#1d3557", weight: 1, fillColor: "#a8dadc", fillOpacity: 0.35, className: `unit unit-${f.properties.id}` }),
    onEachFeature: (feature, lyr) => lyr.bindTooltip(() => unitName(feature.properties.id), { sticky: true }),
  }).addTo(map);
  const bounds = (leaves.length ? layer : outline).getBounds();
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [8, 8] });
  else map.setView([15.3, 108.2], 10);
  map.on("click", (e) => setLocation(e.latlng.lat, e.latlng.lng));
  if (state.location) setLocation(state.location.lat, state.location.lon);
}

// ---- sending -----------------------------------------------------------------------------------

const photos = new PhotoPicker({
  input: $("photos"),
  list: $("photo-previews"),
  error: $("photo-error"),
});

function updateCount() {
  $("description-count").textContent = t("description.count", { n: $("description").value.trim().length });
}

function validate(form) {
  if (!form.querySelector("input[name=category]:checked")) return ["send.need_category", form.querySelector("input[name=category]")];
  if ($("description").value.trim().length < 5) return ["send.need_description", $("description")];
  const phone = $("phone").value.trim();
  if (phone && !/^\+?[0-9 .-]{6,20}$/.test(phone)) return ["send.bad_phone", $("phone")];
  return null;
}

async function send(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("send-error");
  error.textContent = "";
  const problem = validate(form);
  if (problem) {
    error.textContent = t(problem[0]);
    problem[1]?.focus();
    return;
  }
  const data = new FormData();
  data.set("category", form.querySelector("input[name=category]:checked").value);
  data.set("description", $("description").value.trim().normalize("NFC"));
  if (state.location) {
    data.set("lat", String(state.location.lat));
    data.set("lon", String(state.location.lon));
  }
  for (const id of ["address", "name", "phone", "email"]) {
    const value = $(id).value.trim().normalize("NFC");
    if (value) data.set(id, value);
  }
  data.set("consent", $("consent").checked ? "true" : "false");
  for (const file of photos.files()) data.append("photos", file, file.name);

  const button = $("send-button");
  button.disabled = true;
  button.textContent = t("send.sending");
  // One key per report, kept until it is accepted: a retry after a timeout or a dropped connection
  // (the report may have arrived) gets the same report's receipt, never a second report.
  state.idempotencyKey ??= newIdempotencyKey();
  try {
    const receipt = await sendWithRetries(data, state.idempotencyKey, (attempt) => {
      error.textContent = t("send.retrying", { n: attempt });
    });
    state.idempotencyKey = null;
    error.textContent = "";
    showReceipt(receipt);
  } catch (err) {
    error.textContent = problemText(err);
  } finally {
    button.disabled = false;
    button.textContent = t("send.submit");
  }
}

// A photo upload on a slow mobile link can take a while; `data-send-timeout-ms` on <body> overrides.
const SEND_TIMEOUT_MS = 30_000;
const SEND_RETRIES = 3;

/** POST the report; on a timeout, a network error or a 503, wait and send it again (same key). */
async function sendWithRetries(data, key, onRetry) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await api("/api/public/reports", {
        method: "POST", form: data, auth: false, headers: { "Idempotency-Key": key },
        timeoutMs: Number(document.body.dataset.sendTimeoutMs) || SEND_TIMEOUT_MS,
      });
    } catch (err) {
      const transient = err.status === 0 || err.status === 502 || err.status === 503 || err.status === 504;
      if (!transient || attempt >= SEND_RETRIES) throw err;
      onRetry(attempt + 1);
      await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** attempt));
    }
  }
}

function showReceipt(receipt) {
  state.receipt = receipt;
  $("report-form").hidden = true;
  $("receipt").hidden = false;
  $("tracking-code").textContent = receipt.tracking_code;
  renderReceipt();
  $("receipt-lookup").href = `#tra-cuu/${receipt.tracking_code}`;
  $("receipt-heading").focus();
}

function renderReceipt() {
  const receipt = state.receipt;
  if (!receipt) return;
  $("receipt-unit").textContent = receipt.unit_id ? unitName(receipt.unit_id) : t("receipt.district");
  $("receipt-due").textContent = formatDate(receipt.due_at, "datetime");
}

async function copyCode() {
  const code = $("tracking-code").textContent;
  try {
    await navigator.clipboard.writeText(code);
    $("copy-status").textContent = t("receipt.copied");
  } catch {
    const range = document.createRange();
    range.selectNodeContents($("tracking-code"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    $("copy-status").textContent = t("receipt.copy_failed");
  }
}

function sendAnother() {
  const form = $("report-form");
  form.reset();
  photos.clear();
  state.location = null;
  state.receipt = null;
  if (state.marker) {
    state.marker.remove();
    state.marker = null;
  }
  showLocationNote("location.none");
  updateCount();
  $("receipt").hidden = true;
  form.hidden = false;
  form.querySelector("input[name=category]")?.focus();
}

// ---- lookup and rating -------------------------------------------------------------------------

async function lookUp(raw) {
  const code = raw.trim();
  const error = $("lookup-error");
  error.textContent = "";
  $("lookup-notice").hidden = true;
  // As forgiving as the server (ioc/reports/codes.py): case, spaces and dashes do not matter.
  const symbols = code.toUpperCase().replace(/[^0-9A-Z]/g, "");
  if (!(symbols.length === 8 || (symbols.length === 10 && symbols.startsWith("PA")))) {
    error.textContent = t("lookup.bad_code");
    $("lookup-result").hidden = true;
    return;
  }
  $("lookup-button").disabled = true;
  try {
    state.lookup = await api(`/api/public/reports/${encodeURIComponent(code)}`, { auth: false });
    renderLookup();
    $("lookup-result").hidden = false;
    $("lookup-result-heading").focus();
  } catch (err) {
    $("lookup-result").hidden = true;
    error.textContent = problemText(err);
  } finally {
    $("lookup-button").disabled = false;
  }
}

function historyItem(at, title, text) {
  const li = document.createElement("li");
  const time = document.createElement("time");
  time.dateTime = at;
  time.textContent = formatDate(at, "datetime");
  const head = document.createElement("strong");
  head.textContent = title;
  li.append(time, " ", head);
  if (text) {
    const p = document.createElement("p");
    p.textContent = text;
    li.append(p);
  }
  return { at: new Date(at).getTime(), li };
}

function renderLookup() {
  const r = state.lookup;
  if (!r) return;
  const status = $("lookup-status");
  status.textContent = t(`report.${r.status}`);
  status.dataset.status = r.status;
  $("lookup-shown-code").textContent = r.tracking_code;
  $("lookup-category").textContent = categoryName(r.category);
  $("lookup-unit").textContent = r.unit_name || t("receipt.district");
  $("lookup-due").textContent = formatDate(r.due_at, "datetime");
  $("lookup-photos").textContent = String(r.photos ?? 0);
  const merged = $("lookup-merged");
  merged.hidden = !r.merged_into;
  if (r.merged_into) merged.textContent = t("lookup.merged", { code: r.merged_into, n: r.supporters });
  const incident = $("lookup-incident");
  incident.hidden = !r.incident;
  if (r.incident) {
    incident.textContent = t("lookup.incident", {
      title: r.incident.title, status: t(`incident.${r.incident.status}`), reports: r.incident.reports, signals: r.incident.signals,
    });
    incident.dataset.status = r.incident.status;
  }

  const items = [historyItem(r.created_at, t("history.received"))];
  for (const reply of r.replies || []) items.push(historyItem(reply.at, t("history.reply"), reply.text));
  for (const step of r.history || []) items.push(historyItem(step.at, t(`report.${step.status}`)));
  if (r.resolved_at && !(r.history || []).some((s) => s.status === "resolved")) {
    items.push(historyItem(r.resolved_at, t("history.resolved")));
  }
  items.sort((a, b) => a.at - b.at);
  $("lookup-history").replaceChildren(...items.map((x) => x.li));

  const resolved = r.status === "resolved" || r.status === "closed";
  $("rating-form").hidden = !(resolved && r.rating === null && !r.merged_into);
  // "Not fixed": the server allows it within 7 days of the resolution and says so otherwise.
  $("reopen").hidden = !(r.status === "resolved" && !r.merged_into);
  $("rating-done").hidden = r.rating === null;
  if (r.rating !== null) $("rating-done").textContent = t("rating.given", { n: r.rating });
}

function renderStars() {
  const box = $("rating-stars");
  const chosen = box.querySelector("input:checked")?.value;
  box.replaceChildren(
    ...[1, 2, 3, 4, 5].map((n) => {
      const label = document.createElement("label");
      label.className = "star";
      const input = document.createElement("input");
      input.type = "radio";
      input.name = "rating";
      input.value = String(n);
      input.checked = String(n) === chosen;
      input.setAttribute("aria-label", t("rating.star", { n }));
      const text = document.createElement("span");
      text.setAttribute("aria-hidden", "true");
      text.textContent = `${n}★`;
      label.append(input, text);
      return label;
    }),
  );
}

async function rate(event) {
  event.preventDefault();
  const error = $("rating-error");
  error.textContent = "";
  const chosen = $("rating-stars").querySelector("input:checked");
  if (!chosen) {
    error.textContent = t("rating.need");
    $("rating-stars").querySelector("input")?.focus();
    return;
  }
  const rating = Number(chosen.value);
  const comment = $("rating-comment").value.trim().normalize("NFC");
  $("rating-button").disabled = true;
  try {
    await api(`/api/public/reports/${encodeURIComponent(state.lookup.tracking_code)}/rating`, {
      method: "POST",
      json: comment ? { rating, comment } : { rating },
      auth: false,
    });
    state.lookup.rating = rating;
    renderLookup();
    $("rating-done").textContent = t("rating.thanks", { n: rating });
    $("rating-done").focus?.();
  } catch (err) {
    error.textContent = problemText(err);
  } finally {
    $("rating-button").disabled = false;
  }
}

const reopenPhoto = new PhotoPicker({
  input: $("reopen-photo"),
  list: $("reopen-previews"),
  error: $("reopen-photo-error"),
  max: 1,
});

async function reopen(event) {
  event.preventDefault();
  const error = $("reopen-error");
  error.textContent = "";
  const text = $("reopen-text").value.trim().normalize("NFC");
  const [file] = reopenPhoto.files();
  if (text.length < 5 || !file) {
    error.textContent = t("reopen.need");
    return;
  }
  const form = new FormData();
  form.set("text", text);
  form.set("photo", file, file.name);
  $("reopen-button").disabled = true;
  try {
    await api(`/api/public/reports/${encodeURIComponent(state.lookup.tracking_code)}/reopen`, { method: "POST", form, auth: false });
    $("reopen-text").value = "";
    reopenPhoto.clear();
    $("reopen").open = false;
    await lookUp(state.lookup.tracking_code);
    $("lookup-notice").hidden = false;
    $("lookup-notice").textContent = t("reopen.done");
  } catch (err) {
    error.textContent = problemText(err);
  } finally {
    $("reopen-button").disabled = false;
  }
}

// ---- start -------------------------------------------------------------------------------------

function rerender() {
  renderCategories();
  renderStars();
  updateCount();
  renderReceipt();
  renderLookup();
  photos.render();
  reopenPhoto.render();
  if (state.locationNote) $("location-status").textContent = t(state.locationNote.key, state.locationNote.params);
}

applyTranslations();
bindLangToggle($("lang-toggle"));
onLangChange(rerender);
renderStars();
updateCount();
$("description").addEventListener("input", updateCount);
$("use-location").addEventListener("click", useMyLocation);
$("report-form").addEventListener("submit", send);
$("copy-code").addEventListener("click", copyCode);
$("send-another").addEventListener("click", sendAnother);
$("lookup-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const code = $("lookup-code").value.trim();
  history.replaceState(null, "", `#tra-cuu/${encodeURIComponent(code)}`); // a link to share; no hashchange
  lookUp(code);
});
$("rating-form").addEventListener("submit", rate);
$("reopen-form").addEventListener("submit", reopen);
window.addEventListener("hashchange", route);
loadCategories();
route();
initMap().then(() => {
  renderReceipt();
  renderLookup();
  if (!$("view-send").hidden) state.map?.invalidateSize();
});
