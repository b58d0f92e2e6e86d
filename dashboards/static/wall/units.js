// The units of the district (from the public GeoJSON), shared by the map, the queue and the forms.
import { api } from "../common/api.js";
import { lang } from "../common/i18n.js";

let collection = { type: "FeatureCollection", features: [] };

/** Load `/api/units` once; answers the FeatureCollection. */
export async function loadUnits() {
  collection = await api("/api/units", { auth: false });
  return collection;
}

export function unitsGeoJSON() {
  return collection;
}

/** The units that are communes or towns (what alerts are assigned to), by name. */
export function communes() {
  return collection.features
    .map((f) => f.properties)
    .filter((p) => p.level !== "district" && p.level !== "province")
    .sort((a, b) => unitName(a.id).localeCompare(unitName(b.id), "vi"));
}

/** A unit's display name in the current language (its id when unknown). */
export function unitName(id) {
  if (!id) return "–";
  const unit = collection.features.find((f) => f.id === id || f.properties.id === id);
  if (!unit) return id;
  return (lang() === "en" && unit.properties.name_en) || unit.properties.name;
}
