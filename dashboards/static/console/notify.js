// Telling the commune officer at once while the console is open: a system notification when the
// browser allows it (the phone buzzes even with the tab in the background), otherwise an in-page
// toast and a count in the tab title ("(2) Bàn làm việc…") until the officer looks at the page.

import { el } from "/common/dom.js";
import { t } from "/common/i18n.js";

const TOAST_MS = 8000;
const baseTitle = document.title;
let unseen = 0;

function permitted() {
  return "Notification" in window && Notification.permission === "granted";
}

function renderTitle() {
  document.title = unseen ? `(${unseen}) ${baseTitle}` : baseTitle;
}

function seen() {
  if (unseen && document.visibilityState === "visible") {
    unseen = 0;
    renderTitle();
  }
}

/** Show the "turn on notifications" button while the browser has not been asked yet. */
export function initNotifications(button) {
  const canAsk = "Notification" in window && Notification.permission === "default";
  button.hidden = !canAsk;
  button.addEventListener("click", async () => {
    try {
      await Notification.requestPermission();
    } finally {
      button.hidden = !("Notification" in window) || Notification.permission !== "default";
    }
  });
  // The count goes when the officer comes back to the page or touches it.
  document.addEventListener("visibilitychange", seen);
  window.addEventListener("focus", seen);
  document.addEventListener("pointerdown", seen);
  document.addEventListener("keydown", seen);
}

/** An in-page message that stays a few seconds (or until closed). */
export function toast(text, { onOpen } = {}) {
  const box = document.getElementById("toasts");
  const item = el("div", { class: "toast" });
  const body = el("button", { type: "button", class: "toast-body", text });
  if (onOpen) body.addEventListener("click", () => { onOpen(); item.remove(); });
  const close = el("button", { type: "button", class: "toast-close", "aria-label": t("toast.close"), text: "×" });
  close.addEventListener("click", () => item.remove());
  item.append(body, close);
  box.append(item);
  setTimeout(() => item.remove(), TOAST_MS);
}

/** A new alert arrived: notify by the best means the browser allows. */
export function notifyNew(title, { tag, onOpen } = {}) {
  const text = t("toast.new_alert", { title });
  toast(text, { onOpen });
  if (permitted()) {
    try {
      const n = new Notification(t("console.title"), { body: text, tag, lang: document.documentElement.lang });
      n.onclick = () => { window.focus(); onOpen?.(); n.close(); };
      return;
    } catch {
      /* some mobile browsers only notify from a service worker: the badge below still tells */
    }
  }
  unseen += 1;
  renderTitle();
}
