// The wall clock, always in the district's local time (Asia/Ho_Chi_Minh), whatever the machine's
// zone; redrawn at once when the language changes.
import { formatDate, onLangChange } from "../common/i18n.js";

export function startClock(node) {
  const tick = () => {
    const now = new Date();
    node.dateTime = now.toISOString();
    node.textContent = `${formatDate(now, "time")} · ${formatDate(now, "long")}`;
  };
  tick();
  onLangChange(tick);
  setInterval(tick, 1000);
}
