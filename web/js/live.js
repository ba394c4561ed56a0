// The live stream (/api/events): run and step summaries as they are committed.
// Views subscribe by event name; "resync" tells them to refetch what they show, after a
// reconnect or when the daemon reports it dropped messages for this page.

import { toLogin } from "./api.js";

const handlers = new Map();
// step_incomplete and run_incomplete: the daemon marked a row whose process went away.
const KINDS = ["run_start", "run_end", "step_start", "step_end", "step_incomplete", "run_incomplete"];
let source = null;
let state = "connecting";
let everOpen = false;
let missed = false;
let retryTimer = null;
let retryDelay = 1000;

export function on(kind, handler) {
  if (!handlers.has(kind)) handlers.set(kind, new Set());
  handlers.get(kind).add(handler);
  return () => handlers.get(kind).delete(handler);
}

function emit(kind, data) {
  for (const handler of handlers.get(kind) || []) {
    try {
      handler(data);
    } catch (error) {
      setTimeout(() => { throw error; }); // report it, but keep the other handlers running
    }
  }
}

export function status() {
  return state;
}

function setState(next, detail = "") {
  state = next;
  const pill = document.getElementById("live");
  if (pill) {
    pill.dataset.state = next;
    pill.querySelector(".label").textContent = {
      connecting: "connecting…", live: "live", reconnecting: "reconnecting…",
      offline: "offline",
    }[next] || next;
    pill.title = detail || {
      live: "connected: runs and steps appear as they are stored",
      reconnecting: "the live stream dropped; catching up when it is back",
      offline: "the daemon is not answering; retrying",
    }[next] || "";
  }
  emit("state", next);
}

export function connect() {
  clearTimeout(retryTimer);
  if (source) source.close();
  source = new EventSource("/api/events");
  source.onopen = () => {
    retryDelay = 1000;
    const reconnected = everOpen || missed;
    everOpen = true;
    missed = false;
    setState("live");
    if (reconnected) emit("resync", "reconnected");
  };
  source.onerror = () => {
    missed = true;
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (an HTTP error, not a dropped connection): find out why.
      setState("offline");
      probe();
    } else {
      setState("reconnecting");
    }
  };
  for (const kind of KINDS) {
    source.addEventListener(kind, (event) => emit(kind, JSON.parse(event.data)));
  }
  source.addEventListener("dropped", () => emit("resync", "dropped"));
}

async function probe() {
  try {
    const response = await fetch("/api/runs?limit=1", { credentials: "same-origin" });
    if (response.status === 401) {
      toLogin();
      return;
    }
  } catch { /* daemon down: retry below */ }
  retryTimer = setTimeout(connect, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 15000);
}
