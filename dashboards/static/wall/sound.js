// The critical-alert sound: a short WebAudio beep (no audio file to fetch), with a mute toggle kept
// in localStorage. Browsers allow audio only after a user gesture: logging in is one.
import { t } from "../common/i18n.js";

const KEY = "ioc.wall.muted";
let context = null;
let muted = localStorage.getItem(KEY) === "1";
let beeps = 0;

function audio() {
  context ??= new (window.AudioContext || window.webkitAudioContext)();
  if (context.state === "suspended") context.resume();
  return context;
}

/** Three short beeps at 880 Hz, unless muted. */
export function beep() {
  if (muted) return;
  beeps += 1;
  document.body.dataset.beeps = String(beeps); // how many times it sounded (tests, diagnostics)
  try {
    const ctx = audio();
    for (let i = 0; i < 3; i++) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = 880;
      gain.gain.value = 0.08;
      osc.connect(gain).connect(ctx.destination);
      const start = ctx.currentTime + i * 0.3;
      osc.start(start);
      osc.stop(start + 0.15);
    }
  } catch (err) {
    console.warn("sound unavailable", err);
  }
}

/** Make `button` the mute toggle. */
export function bindMute(button) {
  const render = () => {
    button.textContent = muted ? t("sound.off") : t("sound.on");
    button.setAttribute("aria-pressed", String(muted));
    button.setAttribute("aria-label", t("sound.label"));
  };
  button.addEventListener("click", () => {
    muted = !muted;
    localStorage.setItem(KEY, muted ? "1" : "0");
    if (!muted) audio();
    render();
  });
  render();
  return render;
}

/** Unlock audio on the first gesture (the login click). */
export function unlockAudio() {
  try {
    audio();
  } catch {
    /* no WebAudio: silent wall */
  }
}
