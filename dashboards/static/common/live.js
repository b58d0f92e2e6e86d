// The live stream (/ws) for the wall and the consoles.
//
// The server sends a snapshot of open alerts on the first connection, then live events; each alert
// event carries the alert's `seq`. This client remembers the highest seq it saw and, after any
// drop (network, hub restart, "resync", hub.reconnected), reconnects with `since=<seq>` so the
// server replays every alert changed meanwhile: nothing is missed. Backoff: 0.5 s doubling to 10 s.
// The same alert change can arrive twice (replay overlapping live events): it is passed on once,
// deduplicated by alert id + seq. The token goes in the first message, not the URL (proxy logs).

import { accessToken, refresh, session } from "./api.js";

const MAX_BACKOFF_MS = 10_000;
// The server sends a ping after 5 s of silence: nothing heard for this long means it is hung
// (stopped, overloaded) even though the TCP connection looks open; a connection that does not
// open within it is given up too.
const SILENCE_MS = 8_000;

/**
 * Open the stream. Callbacks:
 *  - `onEvent(event, {seq, phase})`: `event` is `{topic, type, unit_id, at, data}`; `phase` is
 *    "snapshot", "replay" or "live";
 *  - `onReset()`: before a fresh snapshot (drop the alerts you hold; they come again);
 *  - `onSynced({last_seq, phase})`: the snapshot or replay is complete;
 *  - `onStatus("online" | "offline" | "degraded")`: for the banner ("degraded": the server is up
 *    but its database is away; "offline" also when the server stops answering: heartbeat).
 * Options: `topics` (array), `units` (array), `minSeverity`.
 * Answers `{close(), reconnect(), lastSeq()}`.
 */
export function connectLive({ topics = [], units = [], minSeverity = "", onEvent, onReset, onSynced, onStatus } = {}) {
  let socket = null;
  let lastSeq = null; // null until the first snapshot: then every reconnect replays from it
  let backoff = 500;
  let timer = null;
  let closed = false;
  let status = null;
  let heardAt = Date.now();
  let openedAt = Date.now();
  let databaseDown = false;
  const seen = new Map(); // alert id -> highest seq passed on

  const watchdog = setInterval(() => {
    if (closed || !socket) return;
    const now = Date.now();
    const silent = socket.readyState === WebSocket.OPEN && now - heardAt > SILENCE_MS;
    const stuck = socket.readyState === WebSocket.CONNECTING && now - openedAt > SILENCE_MS;
    if (silent || stuck) {
      setStatus("offline");
      reconnect();
    }
  }, 1000);

  function setStatus(next) {
    if (next === status) return;
    status = next;
    onStatus?.(next);
  }

  function url() {
    const u = new URL("/ws", location.href);
    u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (topics.length) u.searchParams.set("topics", topics.join(","));
    if (units.length) u.searchParams.set("units", units.join(","));
    if (minSeverity) u.searchParams.set("min_severity", minSeverity);
    if (lastSeq !== null) u.searchParams.set("since", String(lastSeq));
    return u.toString();
  }

  function fresh(event, seq) {
    if (event.topic !== "alert" || seq === undefined || seq === null) return true;
    const id = event.data?.id;
    if (id === undefined) return true;
    if ((seen.get(id) ?? -1) >= seq) return false;
    seen.set(id, seq);
    return true;
  }

  function handle(message) {
    switch (message.type) {
      case "hello":
        if (lastSeq === null) {
          seen.clear();
          onReset?.();
        }
        break;
      case "event": {
        const phase = message.event.type.endsWith(".snapshot")
          ? "snapshot"
          : message.event.type.endsWith(".replay")
            ? "replay"
            : "live";
        if (typeof message.seq === "number") lastSeq = Math.max(lastSeq ?? 0, message.seq);
        if (message.event.topic === "system" && message.event.type.startsWith("database.")) {
          databaseDown = message.event.type === "database.unavailable";
          setStatus(databaseDown ? "degraded" : "online");
          if (!databaseDown) reconnect(); // replay what changed while it was away
          return;
        }
        if (message.event.topic === "system" && message.event.type === "hub.reconnected") {
          // Notifications were lost while the server's listener was away: replay from our seq.
          reconnect();
          return;
        }
        if (fresh(message.event, message.seq)) onEvent?.(message.event, { seq: message.seq, phase });
        break;
      }
      case "snapshot_end":
      case "replay_end":
        lastSeq = Math.max(lastSeq ?? 0, message.last_seq ?? 0);
        backoff = 500;
        databaseDown = false;
        setStatus("online");
        onSynced?.({ last_seq: lastSeq, phase: message.type === "snapshot_end" ? "snapshot" : "replay" });
        break;
      case "batch":
        for (const item of message.items || []) handle(item);
        break;
      case "resync":
        reconnect();
        break;
      case "error":
        console.warn("live stream refused:", message.reason);
        if (/token|expired|session/i.test(message.reason || "")) refresh();
        break;
      default:
        break; // ping and anything newer
    }
  }

  async function open() {
    clearTimeout(timer);
    if (closed) return;
    // A reconnect after a long outage: get a fresh access token first (it lives 15 minutes).
    const expires = Date.parse(session()?.expires_at || "");
    if (expires && expires - Date.now() < 30_000) await refresh();
    if (closed) return;
    const ws = new WebSocket(url());
    const previous = socket;
    socket = ws;
    openedAt = Date.now();
    previous?.close(); // never two streams at once (a timer and a resync racing)
    ws.addEventListener("open", () => (heardAt = Date.now()) && ws.send(JSON.stringify({ type: "auth", access_token: accessToken() })));
    ws.addEventListener("message", (msg) => {
      if (ws !== socket) return;
      heardAt = Date.now();
      try {
        handle(JSON.parse(msg.data));
      } catch (err) {
        console.error("bad live message", err);
      }
    });
    ws.addEventListener("close", () => {
      if (ws !== socket) return;
      socket = null;
      setStatus("offline");
      if (closed) return;
      timer = setTimeout(open, backoff);
      backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
    });
  }

  function reconnect() {
    const ws = socket;
    socket = null;
    if (ws) ws.close();
    backoff = 500;
    open();
  }

  open();
  return {
    close() {
      closed = true;
      clearInterval(watchdog);
      clearTimeout(timer);
      socket?.close();
    },
    reconnect,
    lastSeq: () => lastSeq,
  };
}
