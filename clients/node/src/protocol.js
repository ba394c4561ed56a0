// The TraceForge socket protocol as protocol.md (at the top of the repository) describes it:
// the preface, length-prefixed msgpack frames, every message's fields in the reference
// encoder's order with their defaults, and the checks an event must pass before it is
// batched, so the daemon never has a reason to refuse one.

import { Decoder, Encoder } from "@msgpack/msgpack";

export const PREFACE = Uint8Array.of(0x54, 0x46, 0x52, 0x01); // "TFR", framing generation 1
export const PROTOCOL_VERSIONS = [1];
export const MAX_FRAME_BYTES = 4 * 1024 * 1024; // until hello_ok announces the daemon's
export const MAX_BATCH_EVENTS = 1000;
export const MAX_FIELD_BYTES = 1024 * 1024;
export const MAX_NAME_CHARS = 512;
export const INT64_MAX = 2n ** 63n - 1n; // the top of every stored integer's range (section 5.3)

const REQUIRED = Symbol("required");

// Section 6: each message's fields in table order, with their defaults. Encoding a message
// built from this table, every field present, gives the reference encoding: the one the
// daemon checks fastest, and the bytes of the exact test vectors.
export const FIELDS = {
  hello: [["versions", REQUIRED], ["proto", "traceforge"], ["token", null], ["client", ""],
    ["client_version", ""], ["lang", ""], ["pid", 0], ["host", ""], ["session", ""]],
  batch: [["seq", REQUIRED], ["events", REQUIRED], ["dropped", {}]],
  bye: [],
  run_start: [["run_id", REQUIRED], ["name", REQUIRED], ["start_ns", REQUIRED],
    ["metadata_json", "{}"]],
  run_end: [["run_id", REQUIRED], ["name", REQUIRED], ["start_ns", REQUIRED],
    ["end_ns", REQUIRED], ["status", "success"], ["error", null], ["metadata_json", "{}"]],
  step_start: [["run_id", REQUIRED], ["step_id", REQUIRED], ["name", REQUIRED],
    ["start_ns", REQUIRED], ["parent_step_id", null], ["model", null], ["input_json", null],
    ["metadata_json", null]],
  step_end: [["run_id", REQUIRED], ["step_id", REQUIRED], ["name", REQUIRED],
    ["start_ns", REQUIRED], ["end_ns", REQUIRED], ["parent_step_id", null], ["status", "ok"],
    ["model", null], ["output_json", null], ["tokens_input", 0], ["tokens_output", 0],
    ["tokens_cache_read", 0], ["tokens_cache_write", 0], ["cost_usd", null],
    ["error_type", null], ["error_message", null], ["traceback", null],
    ["metadata_json", null]],
  hello_ok: [["version", REQUIRED], ["server", "traceforge-daemon"], ["server_version", ""],
    ["max_frame_bytes", MAX_FRAME_BYTES], ["max_batch_events", MAX_BATCH_EVENTS],
    ["ack", "commit"]],
  ack: [["seq", REQUIRED]],
  error: [["code", REQUIRED], ["message", REQUIRED], ["fatal", true], ["retryable", false],
    ["seq", null], ["versions", null], ["retry_after_ms", null]],
};

/** `fields` as a complete message of kind `type`: `type` first, then every field of the
 * table in order, defaults filled in. Throws for a missing required field. */
export function makeMessage(type, fields = {}) {
  const layout = FIELDS[type];
  if (!layout) throw new Error(`unknown message type ${JSON.stringify(type)}`);
  const message = { type };
  for (const [name, fallback] of layout) {
    const value = fields[name];
    if (value === undefined) {
      if (fallback === REQUIRED) throw new Error(`${type}: ${name} is required`);
      message[name] = typeof fallback === "object" && fallback !== null ? { ...fallback } : fallback;
    } else {
      message[name] = value;
    }
  }
  return message;
}

// BigInt for times: doubles lose nanoseconds above 2^53. The library writes every BigInt as
// a 64-bit integer, which the daemon accepts at any size (section 5.4).
const encoder = new Encoder({ useBigInt64: true });
const decoder = new Decoder({ useBigInt64: true });

export function encode(value) {
  return encoder.encode(value);
}

export function decode(bytes) {
  return decoder.decode(bytes);
}

/** One message as a complete frame: a 4-byte big-endian length, then the msgpack body. */
export function encodeFrame(message) {
  return frameOf(encode(message));
}

export function frameOf(body) {
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}

/** A batch frame from events already encoded as one msgpack array: the same bytes as
 * encoding the whole batch, so a batch kept as bytes can be renumbered and resent. */
export function batchFrame(seq, eventsArray, dropped) {
  const parts = [Uint8Array.of(0x84), encode("type"), encode("batch"), encode("seq"), encode(seq),
    encode("events"), eventsArray, encode("dropped"), encode(dropped)];
  const body = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    body.set(part, offset);
    offset += part.length;
  }
  return frameOf(body);
}

/** Splits the daemon's byte stream into messages. */
export class FrameReader {
  constructor(maxFrameBytes = MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
    this.buffer = Buffer.alloc(0);
  }

  /** Adds `chunk`; returns the complete messages it finished. Throws on a frame no daemon
   * sends (over the bound, or not msgpack): the caller drops the connection. */
  push(chunk) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    const messages = [];
    while (this.buffer.length >= 4) {
      const length = this.buffer.readUInt32BE(0);
      if (length > this.maxFrameBytes) throw new Error(`the daemon sent a ${length}-byte frame`);
      if (this.buffer.length < 4 + length) break;
      messages.push(decode(this.buffer.subarray(4, 4 + length)));
      this.buffer = this.buffer.subarray(4 + length);
    }
    return messages;
  }
}

// ---- the checks of sections 5 and 6, for events this client builds ----

const RUN_ID = /^[0-9a-f]{32}$/;
const STEP_ID = /^[0-9a-f]{16}$/;

function isInteger(value, min, max) {
  if (typeof value === "bigint") return value >= min && value <= max;
  return Number.isSafeInteger(value) && value >= Number(min) && value <= Number(max);
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/gu;

/** `text` with every lone surrogate (which has no UTF-8 form) replaced by U+FFFD. */
export function wellFormed(text) {
  return typeof text.toWellFormed === "function" ? text.toWellFormed()
    : text.replace(LONE_SURROGATE, "\ufffd");
}

function isText(value) {
  return typeof value === "string" && (typeof value.isWellFormed === "function"
    ? value.isWellFormed() : wellFormed(value) === value);
}

function checkName(value) {
  if (!isText(value)) return "is not a well-formed string";
  const chars = [...value].length; // code points, not UTF-16 units
  return chars >= 1 && chars <= MAX_NAME_CHARS ? null : `has ${chars} characters, not 1 to 512`;
}

const CHECKS = {
  run_id: (v) => (typeof v === "string" && RUN_ID.test(v) ? null : "is not a run id"),
  step_id: (v) => (typeof v === "string" && STEP_ID.test(v) ? null : "is not a step id"),
  parent_step_id: (v) => (v === null || (typeof v === "string" && STEP_ID.test(v)) ? null
    : "is not a step id or null"),
  name: checkName,
  start_ns: (v) => (isInteger(v, 0n, INT64_MAX) ? null : "is not a time from 0 to 2^63-1"),
  end_ns: (v) => (isInteger(v, 0n, INT64_MAX) ? null : "is not a time from 0 to 2^63-1"),
  cost_usd: (v) => (v === null || (typeof v === "number" && Number.isFinite(v) && v >= 0) ? null
    : "is not a finite cost of at least 0, or null"),
};
for (const name of ["tokens_input", "tokens_output", "tokens_cache_read", "tokens_cache_write"]) {
  CHECKS[name] = (v) => (isInteger(v, 0n, INT64_MAX) ? null : "is not a count from 0 to 2^63-1");
}
for (const name of ["model", "input_json", "output_json", "error_type", "error_message",
  "traceback", "error"]) {
  CHECKS[name] = (v) => (v === null || isText(v) ? null : "is not a well-formed string or null");
}
CHECKS.metadata_json = (v) => (v === null || isText(v) ? null : "is not a well-formed string");
const STATUSES = { run_end: ["success", "error"], step_end: ["ok", "error"] };

/** null if `event` (a complete message from makeMessage) meets every rule protocol.md sets
 * for its kind; else what is wrong, as "field: reason". */
export function checkEvent(event) {
  const layout = FIELDS[event.type];
  if (!layout || !["run_start", "run_end", "step_start", "step_end"].includes(event.type)) {
    return `type: ${JSON.stringify(event.type)} is not an event`;
  }
  for (const [name] of layout) {
    const check = CHECKS[name];
    const problem = check ? check(event[name]) : null;
    if (problem) return `${name}: ${problem}`;
  }
  if (["run_start", "run_end"].includes(event.type) && event.metadata_json === null) {
    return "metadata_json: is null where only a string is allowed";
  }
  const statuses = STATUSES[event.type];
  if (statuses && !statuses.includes(event.status)) return `status: ${event.status} is not allowed`;
  return null;
}

/** null if `batch` (seq, events, dropped) may be sent; else what is wrong. */
export function checkBatch(batch) {
  if (!isInteger(batch.seq, 1n, INT64_MAX)) return "seq: is not from 1 to 2^63-1";
  if (!Array.isArray(batch.events) || batch.events.length > MAX_BATCH_EVENTS) {
    return `events: more than ${MAX_BATCH_EVENTS}`;
  }
  for (const [reason, count] of Object.entries(batch.dropped ?? {})) {
    if (!isText(reason) || !isInteger(count, 0n, INT64_MAX)) return `dropped.${reason}: not a count`;
  }
  for (const [index, event] of batch.events.entries()) {
    const problem = checkEvent(event);
    if (problem) return `events[${index}].${problem}`;
  }
  return null;
}
