// Vietnamese first, English available. Pages register their own strings with `addStrings` and
// read them with `t(key)`; the language chosen is kept in localStorage so every page follows it.
// Every date and time is shown in the district's time zone, whatever the browser's.

const STORAGE_KEY = "ioc.lang";
export const TIME_ZONE = "Asia/Ho_Chi_Minh";
export const LANGS = ["vi", "en"];

const strings = {
  vi: {
    "lang.toggle": "English",
    "lang.toggle.label": "Chuyển sang tiếng Anh",
    "login.title": "Đăng nhập",
    "login.username": "Tên đăng nhập",
    "login.password": "Mật khẩu",
    "login.submit": "Đăng nhập",
    "login.failed": "Đăng nhập không thành công",
    "logout": "Đăng xuất",
    "offline": "Mất kết nối tới máy chủ — đang kết nối lại…",
    "degraded": "Máy chủ mất kết nối cơ sở dữ liệu — số liệu trên màn hình có thể chưa cập nhật",
    "online": "Đã kết nối",
    "error.network": "Không kết nối được máy chủ",
    "error.timeout": "Máy chủ không trả lời kịp",
    "error.generic": "Có lỗi xảy ra",
    "no_data": "chưa có dữ liệu",
    "loading": "Đang tải…",
    "severity.info": "Thông tin",
    "severity.minor": "Nhẹ",
    "severity.moderate": "Trung bình",
    "severity.severe": "Nghiêm trọng",
    "severity.critical": "Khẩn cấp",
    "status.new": "Mới",
    "status.acknowledged": "Đã tiếp nhận",
    "status.in_progress": "Đang xử lý",
    "status.resolved": "Đã xử lý xong",
    "status.closed": "Đã đóng",
    "status.dismissed": "Báo động giả",
    "presence.online": "Trực tuyến",
    "presence.offline": "Mất kết nối",
    "presence.unknown": "Chưa rõ",
  },
  en: {
    "lang.toggle": "Tiếng Việt",
    "lang.toggle.label": "Switch to Vietnamese",
    "login.title": "Sign in",
    "login.username": "User name",
    "login.password": "Password",
    "login.submit": "Sign in",
    "login.failed": "Sign-in failed",
    "logout": "Sign out",
    "offline": "Connection to the server lost — reconnecting…",
    "degraded": "The server lost its database — figures on screen may be out of date",
    "online": "Connected",
    "error.network": "The server cannot be reached",
    "error.timeout": "The server did not answer in time",
    "error.generic": "Something went wrong",
    "no_data": "no data yet",
    "loading": "Loading…",
    "severity.info": "Info",
    "severity.minor": "Minor",
    "severity.moderate": "Moderate",
    "severity.severe": "Severe",
    "severity.critical": "Critical",
    "status.new": "New",
    "status.acknowledged": "Acknowledged",
    "status.in_progress": "In progress",
    "status.resolved": "Resolved",
    "status.closed": "Closed",
    "status.dismissed": "Dismissed",
    "presence.online": "Online",
    "presence.offline": "Offline",
    "presence.unknown": "Unknown",
  },
};

const listeners = new Set();

function stored() {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    return LANGS.includes(value) ? value : "vi";
  } catch {
    return "vi";
  }
}

let current = stored();

/** The current language code ("vi" or "en"). */
export function lang() {
  return current;
}

/** Add a page's strings: `addStrings({vi: {...}, en: {...}})`. Later keys win. */
export function addStrings(table) {
  for (const code of LANGS) Object.assign(strings[code], table[code] || {});
}

/** The text for `key` in the current language (Vietnamese, then the key, as fallbacks).
 * `{name}` placeholders are filled from `params`. Text is NFC so diacritics compare and render alike. */
export function t(key, params = {}) {
  const raw = strings[current][key] ?? strings.vi[key] ?? key;
  return raw.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? "")).normalize("NFC");
}

/** Switch language, remember it, re-apply `data-i18n` texts and tell the page. */
export function setLang(code) {
  if (!LANGS.includes(code)) return;
  current = code;
  try {
    localStorage.setItem(STORAGE_KEY, code);
  } catch {
    /* private mode: the choice lasts for this page only */
  }
  applyTranslations();
  for (const fn of listeners) fn(code);
}

/** Call `fn(lang)` after every language switch (to re-render dynamic text). */
export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Fill elements marked `data-i18n="key"` (text), `data-i18n-label` (aria-label),
 * `data-i18n-placeholder` and `data-i18n-title`; set <html lang>. */
export function applyTranslations(root = document) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

/** Make `button` a vi/en toggle (its text names the other language). */
export function bindLangToggle(button) {
  const render = () => {
    button.textContent = t("lang.toggle");
    button.setAttribute("aria-label", t("lang.toggle.label"));
    button.lang = current === "vi" ? "en" : "vi";
  };
  button.addEventListener("click", () => setLang(current === "vi" ? "en" : "vi"));
  onLangChange(render);
  render();
}

// One date format on every screen (docs/glossary.md): 24-hour time first, then day/month/year with
// slashes, in Asia/Ho_Chi_Minh, whatever the browser's locale would pick ("6/12/26" beside "06-12"
// on one screen was the complaint). Built from parts so vi and en differ only in the weekday name.
const PATTERNS = {
  datetime: (p) => `${p.hour}:${p.minute} ${p.day}/${p.month}/${p.year}`,
  short: (p) => `${p.hour}:${p.minute} ${p.day}/${p.month}`,
  date: (p) => `${p.day}/${p.month}/${p.year}`,
  time: (p) => `${p.hour}:${p.minute}:${p.second}`,
  long: (p) => `${p.weekday}, ${p.day}/${p.month}/${p.year}`,
};
const formats = new Map();
function formatter(withWeekday) {
  const key = `${current}:${withWeekday}`;
  if (!formats.has(key)) {
    const options = {
      day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
      hourCycle: "h23", timeZone: TIME_ZONE, ...(withWeekday ? { weekday: "long" } : {}),
    };
    formats.set(key, new Intl.DateTimeFormat(current === "vi" ? "vi-VN" : "en-GB", options));
  }
  return formats.get(key);
}

function asDate(value) {
  return value instanceof Date ? value : new Date(value);
}

/** Format a time (Date or ISO string) in Asia/Ho_Chi_Minh. `kind`: datetime (14:07 06/12/2026) |
 * short (14:07 06/12) | date (06/12/2026) | time (14:07:05) | long (Chủ Nhật, 06/12/2026). */
export function formatDate(value, kind = "datetime") {
  if (value === null || value === undefined || value === "") return "";
  const date = asDate(value);
  if (Number.isNaN(date.getTime())) return "";
  const parts = {};
  for (const part of formatter(kind === "long").formatToParts(date)) parts[part.type] = part.value;
  if (parts.weekday) parts.weekday = parts.weekday.charAt(0).toUpperCase() + parts.weekday.slice(1);
  return (PATTERNS[kind] || PATTERNS.datetime)(parts);
}

/** "3 phút trước" / "3 minutes ago". */
export function formatAgo(value, now = new Date()) {
  const seconds = Math.round((asDate(value).getTime() - now.getTime()) / 1000);
  const rtf = new Intl.RelativeTimeFormat(current === "vi" ? "vi-VN" : "en", { numeric: "auto" });
  const abs = Math.abs(seconds);
  if (abs < 60) return rtf.format(seconds, "second");
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(seconds / 3600), "hour");
  return rtf.format(Math.round(seconds / 86400), "day");
}

/** A number in the current locale (`digits` after the decimal point at most). */
export function formatNumber(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "–";
  return new Intl.NumberFormat(current === "vi" ? "vi-VN" : "en", { maximumFractionDigits: digits }).format(value);
}
