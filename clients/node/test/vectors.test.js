// The Node client against the test vectors of protocol.md, read from the document itself
// (section 17): exact vectors must come out of this client's encoder byte for byte, every
// decodable vector must decode to its JSON, and reject vectors must fail this client's own
// checks, the ones it runs before it batches an event.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  FIELDS, checkBatch, decode, encodeFrame, makeMessage,
} from "../src/protocol.js";

const DOC = readFileSync(new URL("../../../protocol.md", import.meta.url), "utf8");

/** JSON with integers too big for a double (times, 2^63) read as BigInt. */
function parseJson(text) {
  const marked = text.replace(/([:[,]\s*)(-?\d{16,})(?=\s*[,\]}])/g, '$1"__bigint__$2"');
  return JSON.parse(marked, (key, value) => (
    typeof value === "string" && value.startsWith("__bigint__") ? BigInt(value.slice(10)) : value));
}

function parseVectors(text) {
  const vectors = [];
  const pattern = /^```(tf-vector(?:-decode|-reject)?) (\S+)\n([\s\S]*?)^```$/gm;
  for (const [, kind, name, content] of text.matchAll(pattern)) {
    const [json, hex] = content.split("\n---\n");
    assert.ok(hex !== undefined, `vector ${name}: no '---' line`);
    const digits = hex.split("\n").map((line) => line.split("#")[0]).join("").replace(/\s+/g, "");
    vectors.push({ kind, name, message: parseJson(json), frame: Buffer.from(digits, "hex") });
  }
  return vectors;
}

const VECTORS = parseVectors(DOC);
const DECODABLE = VECTORS.filter((v) => v.kind !== "tf-vector-reject");

/** A message the way this client builds one: every field in table order, defaults filled
 * in, events too. */
function build(message) {
  const { type, ...fields } = message;
  if (type === "batch" && Array.isArray(fields.events)) {
    fields.events = fields.events.map((event) => build(event));
  }
  return makeMessage(type, fields);
}

/** Integers compare as BigInt, whatever width they were decoded in (section 5.4). */
function normalized(value) {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  if (Array.isArray(value)) return value.map(normalized);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalized(v)]));
  }
  return value;
}

function bodyOf(frame) {
  assert.equal(frame.readUInt32BE(0), frame.length - 4, "the length prefix");
  return frame.subarray(4);
}

test("protocol.md has vectors of every kind, with unique names", () => {
  const names = VECTORS.map((v) => v.name);
  assert.equal(new Set(names).size, names.length);
  for (const kind of ["tf-vector", "tf-vector-decode", "tf-vector-reject"]) {
    assert.ok(VECTORS.some((v) => v.kind === kind), `no ${kind} vector`);
  }
});

for (const vector of VECTORS.filter((v) => v.kind === "tf-vector")) {
  test(`exact vector ${vector.name}: this client encodes its JSON to exactly its bytes`, () => {
    assert.equal(Buffer.from(encodeFrame(build(vector.message))).toString("hex"),
      vector.frame.toString("hex"));
  });
}

for (const vector of DECODABLE) {
  test(`${vector.kind} ${vector.name}: the frame decodes to the JSON, defaults filled in`, () => {
    const decoded = build(decode(bodyOf(vector.frame)));
    assert.deepEqual(normalized(decoded), normalized(vector.message));
    // The JSON lists the fields in the reference order, this client's FIELDS order.
    assert.deepEqual(Object.keys(decoded), Object.keys(vector.message));
    assert.deepEqual(Object.keys(vector.message).slice(1), FIELDS[vector.message.type].map(([n]) => n));
  });
}

for (const vector of VECTORS.filter((v) => v.kind === "tf-vector-reject")) {
  test(`reject vector ${vector.name}: refused by the daemon, never sent by this client`, () => {
    const decoded = decode(bodyOf(vector.frame)); // valid msgpack
    if (vector.name.includes("repeated")) {
      // A JavaScript object cannot hold a key twice: the library keeps one copy, which is
      // why the daemon, not the reader, must look for repeats. This client cannot write one.
      assert.equal(checkBatch(build(decoded)), null);
      return;
    }
    assert.notEqual(checkBatch(build(decoded)), null, "this client's checks should refuse it");
    assert.equal(vector.message.code, "invalid_event");
  });
}
