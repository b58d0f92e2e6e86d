// Talking to the API from a page: the login session lives in sessionStorage (gone when the tab
// closes, never shared with other sites), every call sends the bearer token, a 401 triggers one
// refresh with the rotating refresh token before giving up, and errors (RFC 9457 problem details)
// become `ApiError`s whose message a person can read.

import { t } from "./i18n.js";

const KEY = "ioc.session";
const listeners = new Set();

/** The stored session `{access_token, refresh_token, expires_at, user}` or null. */
export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

function store(value) {
  if (value) sessionStorage.setItem(KEY, JSON.stringify(value));
  else sessionStorage.removeItem(KEY);
  for (const fn of listeners) fn(value);
}

/** Call `fn(session|null)` when the user logs in, refreshes or is logged out. */
export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** The current access token, or "" when logged out. */
export function accessToken() {
  return session()?.access_token || "";
}

/** The logged-in user (`username, display_name, role, unit_id, units, district_wide`) or null. */
export function currentUser() {
  return session()?.user || null;
}

/** An error from the API: `status`, `problem` (the problem-details body) and a readable `message`. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(readable(status, problem));
    this.name = "ApiError";
    this.status = status;
    this.problem = problem || {};
  }
}

function readable(status, problem) {
  if (!problem) return `${t("error.generic")} (HTTP ${status})`;
  const parts = [problem.detail || problem.title || t("error.generic")];
  for (const item of problem.errors || []) {
    const where = item.pointer ? item.pointer.replace(/^#\//, "") : item.parameter;
    parts.push(where ? `${where}: ${item.detail}` : item.detail);
  }
  return parts.join(" — ");
}

async function parse(response) {
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) return response.json();
  return response.text();
}

let refreshing = null;

/** Exchange the refresh token for a new pair (once, even when several calls hit 401 together). */
export async function refresh() {
  const current = session();
  if (!current?.refresh_token) return false;
  refreshing ??= (async () => {
    try {
      const response = await fetch("/api/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: current.refresh_token }),
      });
      if (!response.ok) {
        store(null);
        return false;
      }
      const body = await response.json();
      store({ ...body, user: body.user || current.user });
      return true;
    } catch {
      return false;
    } finally {
      setTimeout(() => (refreshing = null), 0);
    }
  })();
  return refreshing;
}

/** How long a call may take before it is given up (a hung API must not leave a page waiting forever). */
export const REQUEST_TIMEOUT_MS = 15_000;

/** A random key for `Idempotency-Key` (works without a secure context, unlike randomUUID). */
export function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Call the API: `api("/api/alerts", {method, json, form, query})`. JSON bodies go as `json`,
 * multipart bodies (photos) as a FormData in `form`. Answers the parsed body (a Blob with `raw: true`,
 * for images); throws `ApiError` (status 0 with `timedOut` when no answer came within `timeoutMs`).
 * `headers` adds request headers (e.g. `Idempotency-Key`).
 */
export async function api(path, { method = "GET", json, form, query, auth = true, retry = true, raw = false,
                                  timeoutMs = REQUEST_TIMEOUT_MS, headers: extra = {} } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json", ...extra };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  const token = auth ? accessToken() : "";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    response = await fetch(url, { method, headers, body, signal: abort.signal });
  } catch {
    const error = new ApiError(0, { detail: t(abort.signal.aborted ? "error.timeout" : "error.network") });
    error.timedOut = abort.signal.aborted;
    throw error;
  } finally {
    clearTimeout(timer);
  }
  if (response.status === 401 && auth && retry && (await refresh())) {
    return api(path, { method, json, form, query, auth, retry: false, raw, timeoutMs, headers: extra });
  }
  if (raw && response.ok) return response.blob();
  const parsed = await parse(response).catch(() => null);
  if (!response.ok) throw new ApiError(response.status, typeof parsed === "object" ? parsed : { detail: parsed });
  return parsed;
}

/** Log in; stores and answers the session. Throws `ApiError` (wrong password, locked, ...). */
export async function login(username, password) {
  const body = await api("/api/auth/login", { method: "POST", json: { username, password }, auth: false });
  store(body);
  return body;
}

/** Log out here and on the server (best effort). */
export async function logout() {
  const current = session();
  store(null);
  if (current?.refresh_token) {
    await fetch("/api/auth/logout", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: current.refresh_token }),
    }).catch(() => {});
  }
}

/**
 * Wire a login form (inputs `#username`, `#password`, a `button[type=submit]`, and an element
 * with `[data-role=error]` or `role=alert` for the message). Calls `onLoggedIn(session)`.
 */
export function bindLoginForm(form, onLoggedIn) {
  const error = form.querySelector("[data-role=error], [role=alert]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    if (error) error.textContent = "";
    try {
      const result = await login(form.querySelector("#username").value.trim(), form.querySelector("#password").value);
      form.querySelector("#password").value = "";
      onLoggedIn(result);
    } catch (err) {
      if (error) error.textContent = `${t("login.failed")}: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
}

/** Refresh the access token a minute before it expires, while the page is open. */
export function keepSessionFresh() {
  setInterval(() => {
    const current = session();
    if (!current?.expires_at) return;
    if (new Date(current.expires_at).getTime() - Date.now() < 60_000) refresh();
  }, 15_000);
}
