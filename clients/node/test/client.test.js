// The client's parts, and its sender against a scripted daemon on a real Unix socket: resend
// after a broken connection, a refused batch dropped alone and counted, drop counts
// reported, and nesting found across awaits. The real daemon is tested from the Python
// suite (tests/test_node_client.py).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseAddress, loadConfig } from "../src/config.js";
import { newRunId, parseTraceparent, stepIdSource } from "../src/ids.js";
import {
  INT64_MAX, MAX_FIELD_BYTES, PREFACE, checkEvent, decode, encodeFrame, makeMessage,
} from "../src/protocol.js";
import { Sender } from "../src/sender.js";
import { Tracer, cleanName, count, price, toJson } from "../src/tracer.js";

const dir = mkdtempSync(join(tmpdir(), "tfn"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("run ids are 32 hex digits that sort by time; step ids 16, unique, one prefix", () => {
  const early = newRunId(1_700_000_000_000);
  const late = newRunId(1_700_000_000_001);
  assert.match(early, /^[0-9a-f]{32}$/);
  assert.ok(early < late);
  const next = stepIdSource();
  const ids = Array.from({ length: 1000 }, next);
  assert.ok(ids.every((id) => /^[0-9a-f]{16}$/.test(id)));
  assert.equal(new Set(ids).size, 1000);
  assert.equal(new Set(ids.map((id) => id.slice(0, 8))).size <= 2, true);
});

test("addresses and the traceparent parse as protocol.md sections 2 and 14 say", () => {
  assert.deepEqual(parseAddress("unix:///tmp/x.sock"), { kind: "unix", path: "/tmp/x.sock" });
  assert.deepEqual(parseAddress("/tmp/x.sock"), { kind: "unix", path: "/tmp/x.sock" });
  assert.deepEqual(parseAddress("tcp://[::1]:9"), { kind: "tcp", host: "::1", port: 9 });
  assert.throws(() => parseAddress("http://x:1"));
  const run = "4bf92f3577b34da6a3ce929d0e0e4736";
  assert.deepEqual(parseTraceparent(` 00-${run}-00f067aa0ba902b7-01\n`), [run, "00f067aa0ba902b7"]);
  assert.deepEqual(parseTraceparent(`00-${run}-0000000000000000-00`), [run, null]);
  assert.equal(parseTraceparent("01-x"), null);
});

test("counts, costs and names are made safe for the wire", () => {
  assert.deepEqual([count(-1), count(1.7), count("3"), count(5n)], [0, 1, 0, 5n]);
  assert.equal(count(2 ** 64), INT64_MAX);
  assert.equal(count(2n ** 70n), INT64_MAX);
  assert.deepEqual([price(Infinity), price(NaN), price(-1), price(0.5), price(undefined)],
    [null, null, 0, 0.5, null]);
  assert.equal([...cleanName("é".repeat(600))].length, 512);
  assert.equal(cleanName(""), "unnamed");
  assert.equal(cleanName("a\ud800"), "a\ufffd");
});

test("a payload over 1 MiB becomes the truncation marker, its preview cut on a character", () => {
  const value = "é".repeat(MAX_FIELD_BYTES); // two bytes each
  const marker = JSON.parse(toJson(value));
  const original = Buffer.from(JSON.stringify(value));
  assert.equal(marker._traceforge_truncated, true);
  assert.equal(marker.original_bytes, original.length);
  const preview = Buffer.from(marker.preview);
  assert.ok(preview.length <= MAX_FIELD_BYTES / 4 && preview.length >= MAX_FIELD_BYTES / 4 - 3);
  assert.ok(original.subarray(0, preview.length).equals(preview));
  assert.equal(toJson({ big: 2n ** 64n }), '{"big":"18446744073709551616"}');
});

test("the event checks refuse what the daemon refuses", () => {
  const end = (fields) => makeMessage("step_end", {
    run_id: "4bf92f3577b34da6a3ce929d0e0e4736", step_id: "00f067aa0ba902b7", name: "s",
    start_ns: 1n, end_ns: 2n, ...fields });
  assert.equal(checkEvent(end({})), null);
  for (const bad of [{ tokens_input: 2n ** 63n }, { tokens_input: 1.5 }, { cost_usd: Infinity },
    { name: "x".repeat(513) }, { end_ns: -1n }, { status: "success" }, { step_id: "X" }]) {
    assert.notEqual(checkEvent(end(bad)), null, JSON.stringify(bad, (k, v) => String(v)));
  }
  assert.equal(checkEvent(end({ name: "😀".repeat(512) })), null); // code points, not units
});

/** A daemon that does what the test tells it, on a real Unix socket. */
class ScriptedDaemon {
  constructor(path) {
    this.path = path;
    this.connections = [];
    this.waiting = [];
    this.server = net.createServer((socket) => {
      const connection = { socket, frames: [], buffer: Buffer.alloc(0), waiters: [] };
      socket.on("data", (chunk) => {
        connection.buffer = Buffer.concat([connection.buffer, chunk]);
        if (!connection.preface && connection.buffer.length >= 4) {
          assert.deepEqual([...connection.buffer.subarray(0, 4)], [...PREFACE]);
          connection.buffer = connection.buffer.subarray(4);
          connection.preface = true;
        }
        while (connection.preface && connection.buffer.length >= 4) {
          const length = connection.buffer.readUInt32BE(0);
          if (connection.buffer.length < 4 + length) break;
          connection.frames.push(decode(connection.buffer.subarray(4, 4 + length)));
          connection.buffer = connection.buffer.subarray(4 + length);
        }
        for (const waiter of connection.waiters.splice(0)) waiter();
      });
      socket.on("error", () => {});
      this.connections.push(connection);
      for (const waiter of this.waiting.splice(0)) waiter();
    });
  }

  listen() {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  async connection(index) {
    while (this.connections.length <= index) await new Promise((r) => this.waiting.push(r));
    return this.connections[index];
  }

  /** The connection's next unread frame. */
  async frame(connection) {
    connection.read = connection.read ?? 0;
    while (connection.frames.length <= connection.read) {
      await new Promise((r) => connection.waiters.push(r));
    }
    return connection.frames[connection.read++];
  }

  send(connection, message) {
    connection.socket.write(encodeFrame(makeMessage(message.type, message)));
  }

  close() {
    for (const { socket } of this.connections) socket.destroy();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

test("unacked batches are resent after a broken connection, a refused one is dropped alone, and every drop is reported", async () => {
  const path = join(dir, "scripted.sock");
  const daemon = new ScriptedDaemon(path);
  await daemon.listen();
  const sender = new Sender(loadConfig({ address: `unix://${path}`, flushIntervalMs: 1 }, {}));
  const tracer = new Tracer(sender);
  try {
    const runId = await tracer.run("pipeline", async (id) => {
      await tracer.step("outer", async () => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        await tracer.step("inner", () => "done");
      });
      return id;
    });
    const flushed = sender.flush(10_000);

    // Connection 1: take the hello, answer, read one batch, then break without an ack.
    const first = await daemon.connection(0);
    const hello = await daemon.frame(first);
    assert.equal(hello.type, "hello");
    assert.deepEqual(hello.versions, [1]);
    assert.equal(hello.client, "traceforge-node");
    daemon.send(first, { type: "hello_ok", version: 1 });
    const sent = await daemon.frame(first);
    assert.equal(sent.type, "batch");
    const events = sent.events;
    assert.deepEqual(events.map((e) => e.type),
      ["run_start", "step_start", "step_start", "step_end", "step_end", "run_end"]);
    const [, outer, inner] = events;
    assert.equal(outer.run_id, runId);
    assert.equal(inner.parent_step_id, outer.step_id); // found across an await
    assert.equal(outer.parent_step_id, null);
    first.socket.destroy();

    // Connection 2: the same events come again, renumbered; refuse them for good.
    const second = await daemon.connection(1);
    await daemon.frame(second);
    daemon.send(second, { type: "hello_ok", version: 1 });
    const resent = await daemon.frame(second);
    assert.deepEqual(resent.events, events);
    daemon.send(second, { type: "error", code: "invalid_event", message: "test", seq: resent.seq });

    // Connection 3: the refused batch is not resent; its events are counted as rejected,
    // reported in a batch of their own, which is acked.
    const third = await daemon.connection(2);
    await daemon.frame(third);
    daemon.send(third, { type: "hello_ok", version: 1 });
    const report = await daemon.frame(third);
    assert.deepEqual(report.events, []);
    assert.deepEqual(report.dropped, { rejected: 6 });
    daemon.send(third, { type: "ack", seq: report.seq });
    assert.equal(await flushed, true);
    assert.equal(sender.stats().inflightBatches, 0);
  } finally {
    await sender.shutdown(100);
    await daemon.close();
  }
});

test("after a retryable error with retry_after_ms the client waits that long before reconnecting", async () => {
  const path = join(dir, "retry.sock");
  const daemon = new ScriptedDaemon(path);
  await daemon.listen();
  const sender = new Sender(loadConfig({ address: `unix://${path}`, flushIntervalMs: 1 }, {}));
  const tracer = new Tracer(sender);
  try {
    await tracer.run("disk full", async () => tracer.step("s", () => 1));
    const flushed = sender.flush(10_000);
    const first = await daemon.connection(0);
    await daemon.frame(first);
    daemon.send(first, { type: "hello_ok", version: 1 });
    const batch = await daemon.frame(first);
    const refusedAt = Date.now();
    daemon.send(first, { type: "error", code: "storage_error", message: "disk full",
      retryable: true, seq: batch.seq, retry_after_ms: 700 });
    const second = await daemon.connection(1);
    const waited = Date.now() - refusedAt;
    assert.ok(waited >= 650, `reconnected after ${waited} ms, not after the 700 ms asked for`);
    await daemon.frame(second);
    daemon.send(second, { type: "hello_ok", version: 1 });
    const resent = await daemon.frame(second);
    assert.deepEqual(resent.events, batch.events);
    daemon.send(second, { type: "ack", seq: resent.seq });
    assert.equal(await flushed, true);
  } finally {
    await sender.shutdown(100);
    await daemon.close();
  }
});

test("with no daemon, traced code runs unchanged and shutdown does not wait", async () => {
  const sender = new Sender(loadConfig({ address: `unix://${join(dir, "none.sock")}`,
    flushIntervalMs: 1, maxQueueEvents: 2 }, {}));
  const tracer = new Tracer(sender);
  const warn = console.warn;
  console.warn = () => {};
  try {
    const error = new TypeError("boom");
    assert.throws(() => tracer.run("r", () => tracer.step("s", () => { throw error; })),
      (thrown) => thrown === error); // rethrown unchanged
    assert.equal(await tracer.run("r2", async () => 7), 7);
    await new Promise((resolve) => setTimeout(resolve, 50)); // a connect attempt fails
    const started = Date.now();
    assert.equal(await sender.shutdown(5000), false);
    assert.ok(Date.now() - started < 1000);
    const { dropped } = sender.stats();
    assert.ok(dropped.queue_full > 0 && dropped.undelivered_at_exit === 2, JSON.stringify(dropped));
  } finally {
    console.warn = warn;
  }
});
