// The daemon's health, where every view shows it: a banner under the top bar while the
// daemon is not "ok" (degraded: storing works but something needs a look; failing: what
// clients send is not being stored now), naming each reason; and a "Log out" button when
// this daemon asks for its token (its session cookie cannot be read from script).

import * as api from "./api.js";
import { el, fill } from "./dom.js";
import * as fmt from "./format.js";

const EVERY_MS = 30_000;
const HEADLINE = {
  degraded: "The daemon needs a look",
  failing: "The daemon is not storing traces now (clients keep them and send them again)",
};

export function watch() {
  check();
  setInterval(check, EVERY_MS);
}

/** Ask again now (the live stream reconnected, say). */
export async function check() {
  let health;
  try {
    health = await api.get("/api/health");
  } catch {
    return; // the live indicator already says the daemon is away
  }
  show(health);
}

export function show(health) {
  const banner = document.getElementById("health-banner");
  if (health.status === "ok") {
    banner.hidden = true;
    fill(banner);
  } else {
    banner.hidden = false;
    banner.dataset.status = health.status;
    fill(banner, el("strong", {}, HEADLINE[health.status] || health.status),
      el("ul", {}, (health.reasons || []).map((reason) => el("li", { "data-code": reason.code },
        `${reason.message} (since ${fmt.datetime(reason.since)})`))));
  }
  document.getElementById("logout").hidden = !health.token_required;
  document.body.dataset.health = health.status;
}
