// Tiny DOM helpers shared by the pages: build elements without innerHTML (no injection of data
// coming from devices or citizens), and toggle the offline banner.

import { t } from "./i18n.js";

/** `el("button", {class: "primary", dataset: {alertId: 3}, onclick}, "text", child)`. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/**
 * Show or hide `#offline-banner` (creating it when the page has none) for a live-stream status:
 * "offline" (server unreachable or not answering) or "degraded" (its database is away) show it,
 * with `data-reason` set to the status; "online" hides it.
 */
export function showConnection(status) {
  let banner = document.getElementById("offline-banner");
  if (!banner) {
    banner = el("div", { id: "offline-banner", role: "alert", hidden: true });
    document.body.prepend(banner);
  }
  const shown = status === "offline" || status === "degraded";
  banner.textContent = t(status === "degraded" ? "degraded" : "offline");
  banner.dataset.reason = shown ? status : "";
  banner.hidden = !shown;
}
