// Where the client sends events and how much it may buffer. An option passed to init()
// beats the environment variable, which beats the default; a bad value is reported once
// (console.warn) and the default used: tracing never stops a program from starting.

import { homedir } from "node:os";
import { join } from "node:path";

export const DEFAULTS = {
  maxQueueEvents: 100_000,
  shutdownTimeoutMs: 2000,
  flushIntervalMs: 50,
};

/** `unix:///path.sock`, `tcp://host:port`, or a bare absolute path ending in `.sock`. */
export function parseAddress(text) {
  if (text.startsWith("/") && text.endsWith(".sock")) return { kind: "unix", path: text };
  if (text.startsWith("unix://") && text.length > "unix://".length) {
    return { kind: "unix", path: text.slice("unix://".length) };
  }
  const tcp = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(text);
  if (tcp && Number(tcp[2]) > 0 && Number(tcp[2]) < 65536) {
    return { kind: "tcp", host: tcp[1].replace(/^\[|\]$/g, ""), port: Number(tcp[2]) };
  }
  throw new Error(`bad TraceForge address ${JSON.stringify(text)}: expected unix:///path/to.sock or tcp://host:port`);
}

export function formatAddress(address) {
  if (address.kind === "unix") return `unix://${address.path}`;
  return `tcp://${address.host.includes(":") ? `[${address.host}]` : address.host}:${address.port}`;
}

export function isDisabled(env = process.env) {
  return ["1", "true", "yes", "on"].includes(String(env.TRACEFORGE_DISABLED ?? "").trim().toLowerCase());
}

function defaultAddress(env) {
  const home = env.TRACEFORGE_HOME || join(homedir(), ".traceforge");
  return { kind: "unix", path: join(home, "daemon.sock") };
}

export function loadConfig(options = {}, env = process.env) {
  const config = { ...DEFAULTS, token: null, clock: null };
  const text = options.address ?? env.TRACEFORGE_ADDRESS;
  try {
    config.address = text ? parseAddress(text) : defaultAddress(env);
  } catch (error) {
    console.warn(`traceforge: ${error.message}; using the default socket`);
    config.address = defaultAddress(env);
  }
  config.token = options.token ?? env.TRACEFORGE_TOKEN ?? null;
  for (const name of ["maxQueueEvents", "shutdownTimeoutMs", "flushIntervalMs"]) {
    const value = options[name];
    if (value === undefined) continue;
    if (Number.isSafeInteger(value) && value >= 0) config[name] = value;
    else console.warn(`traceforge: ${name} must be a whole number >= 0; using ${config[name]}`);
  }
  if (typeof options.clock === "function") config.clock = options.clock;
  config.disabled = options.disabled ?? isDisabled(env);
  return config;
}
