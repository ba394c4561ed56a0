// The Sender: this process's one connection to the daemon, and the bounded buffer in front
// of it (protocol.md sections 7 to 13).
//
// emit() only appends to an array and never blocks or throws. A timer takes the events
// off in batches, sends them as frames and keeps every batch, as bytes, until the daemon
// acks it (after its SQLite commit). When the connection breaks, the unacked batches are
// resent on the next one, renumbered (the daemon ignores duplicates). When the buffer is
// full, new events are dropped and counted by reason; the counts ride on the next batch and
// count as reported once that batch is acked. Every event ends acked or counted dropped.
//
// The socket and the timers are unref'd: tracing never keeps a program alive. flush() and
// the flush at exit hold the process open while they wait, for a bounded time.

import net from "node:net";
import { hostname } from "node:os";
import {
  MAX_BATCH_EVENTS, MAX_FRAME_BYTES, PREFACE, PROTOCOL_VERSIONS, FrameReader, batchFrame,
  checkEvent, encode, encodeFrame, makeMessage,
} from "./protocol.js";
import { formatAddress } from "./config.js";
import { newSession } from "./ids.js";

export const CLIENT_NAME = "traceforge-node";
export const CLIENT_VERSION = "0.1.0";
const MAX_INFLIGHT_BATCHES = 16;
const FRAME_OVERHEAD = 128; // room in a frame for everything but the events
const CONNECT_TIMEOUT_MS = 1000;
const HELLO_TIMEOUT_MS = 5000;
const BACKOFF_MIN_MS = 50;
const BACKOFF_MAX_MS = 2000;
const RETRY_AFTER_MAX_MS = 60_000; // a daemon's retry_after_ms is honoured up to this
const NO_SEQ_REFUSALS = new Set(["invalid_event", "malformed", "frame_too_large"]);

export class Sender {
  constructor(config) {
    this.config = config;
    this.session = newSession();
    this.queue = [];
    this.drops = {}; // reason -> count not yet carried by a sent batch
    this.inflight = []; // {seq, events (a msgpack array), count, dropped}
    this.seq = 0;
    this.socket = null;
    this.ready = false; // hello_ok received on this socket
    this.maxFrameBytes = MAX_FRAME_BYTES;
    this.maxBatchEvents = MAX_BATCH_EVENTS;
    this.backoffMs = BACKOFF_MIN_MS;
    this.retryAfterMs = 0;
    this.retryTimer = null;
    this.pumpTimer = null;
    this.waiters = new Set();
    this.holds = 0;
    this.closed = false;
    this.unreachable = false; // the last attempt to connect failed
    this.warned = false;
    this.lastError = null;
    this.counters = { ackedEvents: 0, sentBatches: 0, reconnects: 0 };
  }

  // ---- called by the tracer: never blocks, never throws ----

  emit(type, fields) {
    try {
      if (this.closed) return this.countDrop("shutdown", 1);
      const event = makeMessage(type, fields);
      if (checkEvent(event) !== null) return this.countDrop("encode_error", 1);
      if (this.queue.length >= this.config.maxQueueEvents) return this.countDrop("queue_full", 1);
      this.queue.push(event);
      this.schedule(this.queue.length >= this.maxBatchEvents ? 0 : this.config.flushIntervalMs);
    } catch {
      this.countDrop("encode_error", 1);
    }
    return undefined;
  }

  countDrop(reason, count) {
    this.drops[reason] = (this.drops[reason] ?? 0) + count;
  }

  pending() {
    return this.queue.length + this.inflight.reduce((total, batch) => total + batch.count, 0);
  }

  settled() {
    return this.queue.length === 0 && this.inflight.length === 0 && !this.hasDrops();
  }

  hasDrops() {
    return Object.keys(this.drops).length > 0;
  }

  stats() {
    return {
      queued: this.queue.length,
      inflightBatches: this.inflight.length,
      ...this.counters,
      dropped: { ...this.drops },
      connected: this.ready,
      lastError: this.lastError,
    };
  }

  /** Resolves true once everything traced so far (and every drop count) is acked, false if
   * `timeoutMs` passes first. Keeps the process alive while it waits. */
  flush(timeoutMs = 5000) {
    if (this.settled()) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.hold();
      const waiter = { resolve: (result) => {
        clearTimeout(waiter.timer);
        this.waiters.delete(waiter);
        this.release();
        resolve(result);
      } };
      waiter.timer = setTimeout(() => waiter.resolve(false), timeoutMs);
      this.waiters.add(waiter);
      this.schedule(0);
    });
  }

  /** Flushes within `timeoutMs` (not at all when the daemon could not be reached), says
   * goodbye and stops; later events are counted as `shutdown` drops. */
  async shutdown(timeoutMs = this.config.shutdownTimeoutMs) {
    if (this.closed) return true;
    const delivered = this.unreachable && !this.ready ? this.settled() : await this.flush(timeoutMs);
    this.closed = true;
    const lost = this.pending();
    if (lost) {
      this.countDrop("undelivered_at_exit", lost);
      console.warn(`traceforge: ${lost} events were not delivered before exit (${this.lastError ?? "timed out"}). ${this.hint()}`);
    }
    this.queue = [];
    this.inflight = [];
    clearTimeout(this.retryTimer);
    clearTimeout(this.pumpTimer);
    if (this.socket) {
      if (this.ready) this.socket.end(encodeFrame(makeMessage("bye")));
      else this.socket.destroy();
      this.socket.unref();
    }
    return delivered && lost === 0;
  }

  hint() {
    return this.config.address.kind === "unix" ? "Start the daemon with `traceforge-daemon start`."
      : `Is a daemon listening on ${formatAddress(this.config.address)}?`;
  }

  hold() {
    this.holds += 1;
    this.socket?.ref();
  }

  release() {
    this.holds -= 1;
    if (this.holds === 0) this.socket?.unref();
  }

  // ---- the sending side ----

  schedule(delayMs) {
    if (this.pumpTimer !== null || this.closed) return;
    this.pumpTimer = setTimeout(() => {
      this.pumpTimer = null;
      this.pump();
    }, delayMs);
    this.pumpTimer.unref();
  }

  pump() {
    try {
      if (this.closed) return;
      if (!this.socket) {
        if (this.retryTimer === null && (this.queue.length || this.inflight.length || this.hasDrops())) {
          this.connect();
        }
        return;
      }
      if (!this.ready) return;
      while ((this.queue.length || this.hasDrops()) && this.inflight.length < MAX_INFLIGHT_BATCHES) {
        const events = this.queue.splice(0, this.maxBatchEvents);
        const dropped = this.drops;
        this.drops = {};
        this.sendEvents(events, dropped);
      }
    } catch (error) {
      this.disconnect(error);
    }
  }

  sendEvents(events, dropped) {
    const encoded = encode(events);
    if (encoded.length + FRAME_OVERHEAD > this.maxFrameBytes) {
      if (events.length > 1) {
        const half = events.length >> 1;
        this.sendEvents(events.slice(0, half), dropped);
        this.sendEvents(events.slice(half), {});
        return;
      }
      this.countDrop("too_large", 1);
      this.sendEncoded(encode([]), 0, dropped);
      return;
    }
    this.sendEncoded(encoded, events.length, dropped);
  }

  sendEncoded(events, count, dropped) {
    this.seq += 1;
    this.inflight.push({ seq: this.seq, events, count, dropped });
    this.socket.write(batchFrame(this.seq, events, dropped));
    this.counters.sentBatches += 1;
  }

  // ---- the connection ----

  connect() {
    const { address } = this.config;
    const socket = address.kind === "unix"
      ? net.createConnection({ path: address.path })
      : net.createConnection({ host: address.host, port: address.port, noDelay: true });
    this.socket = socket;
    this.ready = false;
    if (this.holds === 0) socket.unref();
    const reader = new FrameReader();
    const giveUp = setTimeout(() => socket.destroy(new Error("no hello_ok in time")),
      CONNECT_TIMEOUT_MS + HELLO_TIMEOUT_MS);
    giveUp.unref();
    const connectTimer = setTimeout(() => socket.destroy(new Error("connect timed out")),
      CONNECT_TIMEOUT_MS);
    connectTimer.unref();
    socket.on("connect", () => {
      clearTimeout(connectTimer);
      const hello = makeMessage("hello", {
        versions: PROTOCOL_VERSIONS, token: this.config.token, client: CLIENT_NAME,
        client_version: CLIENT_VERSION, lang: "javascript", pid: process.pid,
        host: hostname(), session: this.session,
      });
      const frame = encodeFrame(hello);
      const first = new Uint8Array(PREFACE.length + frame.length);
      first.set(PREFACE);
      first.set(frame, PREFACE.length);
      socket.write(first);
    });
    socket.on("data", (chunk) => {
      if (socket !== this.socket) return;
      try {
        for (const message of reader.push(chunk)) {
          if (message.type === "hello_ok") {
            clearTimeout(giveUp);
            this.onHelloOk(message);
          } else {
            this.onMessage(message);
          }
        }
      } catch (error) {
        this.disconnect(error);
      }
    });
    socket.on("error", (error) => {
      this.lastError = `${formatAddress(address)}: ${error.message}`;
    });
    socket.on("close", () => {
      clearTimeout(connectTimer);
      clearTimeout(giveUp);
      if (socket === this.socket) this.disconnect(null);
    });
  }

  onHelloOk(message) {
    this.ready = true;
    this.unreachable = false;
    this.warned = false;
    this.lastError = null;
    this.maxFrameBytes = Number(message.max_frame_bytes ?? MAX_FRAME_BYTES);
    this.maxBatchEvents = Math.min(Number(message.max_batch_events ?? MAX_BATCH_EVENTS),
      MAX_BATCH_EVENTS);
    // Resend what the previous connection did not get acked, renumbered, before anything new.
    const unacked = this.inflight;
    this.inflight = [];
    if (unacked.length) this.counters.reconnects += 1;
    for (const batch of unacked) this.sendEncoded(batch.events, batch.count, batch.dropped);
    this.pump();
  }

  onMessage(message) {
    if (message.type === "ack") {
      const seq = Number(message.seq);
      this.backoffMs = BACKOFF_MIN_MS; // this connection works: reconnect fast next time
      while (this.inflight.length && this.inflight[0].seq <= seq) {
        this.counters.ackedEvents += this.inflight.shift().count;
      }
      this.notify();
      this.schedule(0);
    } else if (message.type === "error") {
      this.onError(message);
    }
  }

  onError(error) {
    if (!error.retryable) {
      // The daemon refused a batch for good: count it, never resend it. With no seq, the
      // refused frame is the oldest unacked batch: the daemon acks the earlier ones first.
      const seq = error.seq === null || error.seq === undefined ? null : Number(error.seq);
      const index = seq !== null ? this.inflight.findIndex((batch) => batch.seq === seq)
        : NO_SEQ_REFUSALS.has(error.code) && this.inflight.length ? 0 : -1;
      if (index >= 0) {
        const [batch] = this.inflight.splice(index, 1);
        this.countDrop("rejected", batch.count);
        for (const [reason, count] of Object.entries(batch.dropped)) this.countDrop(reason, count);
        console.warn(`traceforge: the daemon rejected events: ${error.code}: ${error.message}`);
      }
    }
    if (error.retryable && error.retry_after_ms !== null && error.retry_after_ms !== undefined) {
      // The daemon said how long to wait (a full disk, overload): do not hammer it.
      this.retryAfterMs = Math.min(Number(error.retry_after_ms), RETRY_AFTER_MAX_MS);
    }
    this.lastError = `${error.code}: ${error.message}`;
    this.disconnect(null);
  }

  disconnect(error) {
    if (error) this.lastError = String(error.message ?? error);
    const socket = this.socket;
    const wasReady = this.ready;
    this.socket = null;
    this.ready = false;
    socket?.destroy();
    if (this.closed) return;
    if (!wasReady) {
      this.unreachable = true; // a flush at exit does not wait for a daemon that is not there
      if (!this.warned) {
        this.warned = true; // once per outage: hello_ok clears it
        console.warn(`traceforge: cannot reach the daemon at ${formatAddress(this.config.address)} (${this.lastError}); buffering up to ${this.config.maxQueueEvents} events until it is up. ${this.hint()}`);
      }
    }
    if (this.queue.length || this.inflight.length || this.hasDrops() || this.waiters.size) {
      const delay = Math.max(this.backoffMs * (0.8 + 0.4 * Math.random()), this.retryAfterMs);
      this.retryAfterMs = 0;
      this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.pump();
      }, delay);
      this.retryTimer.unref();
    }
  }

  notify() {
    if (!this.settled()) return;
    for (const waiter of [...this.waiters]) waiter.resolve(true);
  }
}
