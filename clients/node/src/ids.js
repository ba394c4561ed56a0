// Run and step ids as protocol.md section 5.3 describes them, shaped like OpenTelemetry ids.
//
// A run id is 32 lowercase hex characters: 48 bits of Unix milliseconds, then 80 random
// bits, so runs sort by time. A step id is 16: a random 32-bit prefix chosen once per
// process (never 0 or 2^32-1), then a 32-bit counter starting at a random value below 2^31.
// Ids from one process are unique by construction; a counter that wraps carries into the
// prefix, which changes it but never repeats an id.

import { randomBytes } from "node:crypto";

export function newRunId(nowMs = Date.now()) {
  const millis = BigInt(nowMs) & 0xffffffffffffn;
  return millis.toString(16).padStart(12, "0") + randomBytes(10).toString("hex");
}

export function stepIdSource() {
  let prefix = 1 + (randomBytes(4).readUInt32BE(0) % (2 ** 32 - 2));
  let counter = randomBytes(4).readUInt32BE(0) >>> 1;
  return function nextStepId() {
    const id = prefix.toString(16).padStart(8, "0") + counter.toString(16).padStart(8, "0");
    counter += 1;
    if (counter === 2 ** 32) {
      counter = 0;
      prefix += 1;
    }
    return id;
  };
}

export function newSession() {
  return randomBytes(16).toString("hex");
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;
export const NO_STEP = "0".repeat(16);

/** [run id, step id or null] from a TRACEFORGE_TRACEPARENT value, or null (section 14). */
export function parseTraceparent(value) {
  const match = TRACEPARENT.exec(String(value ?? "").trim());
  if (!match) return null;
  return [match[1], match[2] === NO_STEP ? null : match[2]];
}

export function formatTraceparent(runId, stepId) {
  return `00-${runId}-${stepId ?? NO_STEP}-01`;
}
