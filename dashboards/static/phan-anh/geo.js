// Which unit a point falls in, from the public GeoJSON of /api/units. Only to tell the citizen
// "this is Trà Sơn" before sending: the server routes the report by the same polygons itself.

function inRing(lon, lat, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > lat !== yj > lat && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function inPolygon(lon, lat, rings) {
  if (!rings.length || !inRing(lon, lat, rings[0])) return false;
  return !rings.slice(1).some((hole) => inRing(lon, lat, hole));
}

function contains(geometry, lon, lat) {
  if (!geometry) return false;
  if (geometry.type === "Polygon") return inPolygon(lon, lat, geometry.coordinates);
  if (geometry.type === "MultiPolygon") return geometry.coordinates.some((p) => inPolygon(lon, lat, p));
  return false;
}

/** The most local unit containing the point (the one no other hit names as its parent), or null. */
export function unitAt(collection, lat, lon) {
  const hits = (collection?.features || []).filter((f) => contains(f.geometry, lon, lat));
  if (!hits.length) return null;
  const parents = new Set(hits.map((f) => f.properties?.parent_id));
  return hits.find((f) => !parents.has(f.properties?.id)) || hits[0];
}
