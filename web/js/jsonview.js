// Inputs, outputs and metadata as readable, collapsible JSON: objects and arrays fold
// (<details>, their children drawn only when first opened, so a huge payload costs
// nothing until looked at), and strings read as text: newlines kept, long lines wrapped.

import { el } from "./dom.js";

const OPEN_DEPTH = 2;       // levels open at first
const ITEMS_PER_CHUNK = 200; // array items and object keys drawn before "show more"
const LONG_STRING = 4000;    // characters shown before "show all"

export function jsonView(value) {
  return el("div", { class: "jv" }, node(value, null, 0));
}

function node(value, key, depth) {
  const label = key == null ? null : el("span", { class: "jv-key" }, `${key}: `);
  if (value !== null && typeof value === "object") return branch(value, label, depth);
  return el("div", { class: "jv-leaf" }, label, leaf(value));
}

function leaf(value) {
  if (value === null) return el("span", { class: "jv-null" }, "null");
  if (typeof value === "boolean") return el("span", { class: "jv-bool" }, String(value));
  if (typeof value === "number") return el("span", { class: "jv-num" }, String(value));
  return text(String(value));
}

/** A string as text: in one line when short, as a wrapped block when long or multi-line. */
function text(value) {
  const block = value.length > 80 || value.includes("\n");
  const shown = value.length > LONG_STRING ? value.slice(0, LONG_STRING) : value;
  const span = el("span", { class: block ? "jv-str jv-block" : "jv-str" }, shown);
  if (shown.length < value.length) {
    const more = el("button", { type: "button", class: "link", onclick: () => {
      span.textContent = value;
      more.remove();
    } }, `show all ${value.length.toLocaleString("en-US")} characters`);
    return el("span", {}, span, more);
  }
  return span;
}

function branch(value, label, depth) {
  const isArray = Array.isArray(value);
  const keys = isArray ? null : Object.keys(value);
  const size = isArray ? value.length : keys.length;
  if (!size) return el("div", { class: "jv-leaf" }, label, el("span", { class: "jv-punct" }, isArray ? "[]" : "{}"));
  const summary = el("summary", {}, label,
    el("span", { class: "jv-punct" }, isArray ? `[ ${size} item${size > 1 ? "s" : ""} ]`
      : `{ ${size} key${size > 1 ? "s" : ""} }`));
  const details = el("details", { class: "jv-branch" }, summary);
  const body = el("div", { class: "jv-children" });
  details.append(body);
  let drawn = 0;
  const drawMore = () => {
    const end = Math.min(size, drawn + ITEMS_PER_CHUNK);
    for (let k = drawn; k < end; k++) {
      body.append(isArray ? node(value[k], k, depth + 1) : node(value[keys[k]], keys[k], depth + 1));
    }
    drawn = end;
    body.querySelector(":scope > .jv-more")?.remove();
    if (drawn < size) {
      body.append(el("button", { type: "button", class: "link jv-more", onclick: drawMore },
        `show ${Math.min(ITEMS_PER_CHUNK, size - drawn)} more of ${size - drawn}`));
    }
  };
  details.addEventListener("toggle", () => { if (details.open && !drawn) drawMore(); });
  if (depth < OPEN_DEPTH) {
    details.open = true;
    drawMore();
  }
  return details;
}

/** Expand (up to a few levels more per call) or collapse every branch under root. */
export function setAllOpen(root, open) {
  for (let pass = 0; pass < (open ? 6 : 1); pass++) {
    const closed = [...root.querySelectorAll("details.jv-branch")].filter((d) => d.open !== open);
    if (!closed.length) break;
    for (const details of closed) {
      details.open = open;
      if (open) details.dispatchEvent(new Event("toggle"));  // draw its children now
    }
  }
}
