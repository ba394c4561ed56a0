'''The /docs page: the OpenAPI description rendered as forms you can send, with no CDN.

Plain HTML and a little script, kept here as a string so the daemon serves it from
the installed package with nothing else to find. It reads /openapi.json, lists every
operation with its parameters, and shows the status and body of what you send (an
event stream is shown as it arrives). For a daemon that needs its token, the page's
requests carry the session cookie of ``/login``, as the dashboard's do; a token is
never put in a URL.
'''

DOCS_HTML = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TraceForge API</title>
<link rel="icon" href="data:,">
<style>
:root { --bg:#ffffff; --surface:#f6f8fa; --border:#d0d7de; --text:#1f2328; --muted:#59636e;
        --accent:#0969da; --error:#cf222e; --ok:#1a7f37; }
@media (prefers-color-scheme: dark) {
  :root { --bg:#0f1115; --surface:#161a22; --border:#2a3140; --text:#e6e8eb; --muted:#9aa3b2;
          --accent:#4c8dff; --error:#f2555a; --ok:#3fb950; }
}
body { margin:0; background:var(--bg); color:var(--text);
       font:14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
main { max-width:980px; margin:0 auto; padding:24px 16px 64px; }
h1 { font-size:22px; margin:0 0 4px; } h2 { font-size:16px; margin:28px 0 8px; color:var(--muted);
     text-transform:uppercase; letter-spacing:.06em; }
p.lead { color:var(--muted); margin:0 0 16px; }
details.op { border:1px solid var(--border); border-radius:6px; margin:8px 0; background:var(--surface); }
details.op > summary { cursor:pointer; padding:8px 12px; list-style:none; display:flex; gap:12px;
                       align-items:baseline; }
details.op > summary:focus-visible, button:focus-visible, input:focus-visible,
textarea:focus-visible, select:focus-visible { outline:2px solid var(--accent); outline-offset:2px; }
.method { font:600 12px ui-monospace, monospace; min-width:44px; color:var(--accent); }
.path { font-family:ui-monospace, monospace; }
.summary { color:var(--muted); }
.body { padding:0 12px 12px; }
label { display:grid; grid-template-columns:170px 1fr; gap:8px; margin:6px 0; align-items:center; }
label span small { display:block; color:var(--muted); font-size:12px; }
input, select, textarea { background:var(--bg); color:var(--text); border:1px solid var(--border);
                          border-radius:4px; padding:4px 6px; font:13px ui-monospace, monospace; }
textarea { width:100%; min-height:80px; box-sizing:border-box; }
button { background:var(--accent); color:#fff; border:0; border-radius:4px; padding:6px 14px;
         cursor:pointer; font-weight:600; margin-right:8px; }
button.secondary { background:transparent; color:var(--accent); border:1px solid var(--accent); }
pre { background:var(--bg); border:1px solid var(--border); border-radius:4px; padding:8px;
      overflow:auto; max-height:420px; font:12px/1.45 ui-monospace, monospace; white-space:pre-wrap; }
.status-ok { color:var(--ok); font-weight:600; } .status-bad { color:var(--error); font-weight:600; }
code { font-family:ui-monospace, monospace; }
</style>
</head>
<body>
<main>
<h1 id="title">TraceForge API</h1>
<p class="lead" id="lead">Loading <a href="/openapi.json">/openapi.json</a>…</p>
<div id="ops"></div>
</main>
<script>
"use strict";
const MAX_SHOWN = 200000;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function resolve(spec, schema) {
  while (schema && schema.$ref) {
    schema = schema.$ref.split("/").slice(1).reduce((node, key) => node[key], spec);
  }
  return schema || {};
}

function field(param) {
  const schema = param.schema || {};
  let input;
  if (schema.enum || schema.type === "boolean") {
    input = el("select", { name: param.name }, el("option", { value: "" }, ""));
    for (const value of schema.enum || ["true", "false"]) {
      input.append(el("option", { value: String(value) }, String(value)));
    }
  } else {
    const example = (schema.examples || [])[0];
    input = el("input", { name: param.name, placeholder: String(example ?? schema.type ?? "") });
  }
  input.dataset.in = param.in;
  const caption = el("span", {}, param.name + (param.required ? " *" : ""),
                     el("small", {}, param.description || ""));
  return el("label", {}, caption, input);
}

function show(output, status, text, type) {
  output.textContent = "";
  const ok = status >= 200 && status < 300;
  output.append(el("div", { class: ok ? "status-ok" : "status-bad" }, "HTTP " + status));
  let body = text;
  if ((type || "").includes("application/json")) {
    try { body = JSON.stringify(JSON.parse(text), null, 2); } catch (err) { /* keep text */ }
  }
  if (body.length > MAX_SHOWN) body = body.slice(0, MAX_SHOWN) + "\n… (cut; " + text.length + " bytes)";
  output.append(el("pre", {}, body));
}

function buildUrl(path, form) {
  const query = new URLSearchParams();
  for (const input of form.querySelectorAll("[data-in]")) {
    if (!input.value) continue;
    if (input.dataset.in === "path") path = path.replace("{" + input.name + "}", encodeURIComponent(input.value));
    else query.set(input.name, input.value);
  }
  const text = query.toString();
  return path + (text ? "?" + text : "");
}

function operation(spec, path, method, op) {
  const form = el("form", { class: "body" });
  for (const param of op.parameters || []) form.append(field(param));
  let bodyInput = null;
  if (op.requestBody) {
    const schema = resolve(spec, op.requestBody.content["application/json"].schema);
    const example = {};
    for (const name of schema.required || []) example[name] = "";
    bodyInput = el("textarea", { name: "body", "aria-label": "JSON body" }, JSON.stringify(example, null, 2));
    form.append(el("div", {}, "Body (JSON)"), bodyInput);
  }
  const output = el("div", { "aria-live": "polite" });
  const streaming = Object.keys((op.responses["200"] || {}).content || {}).includes("text/event-stream");
  let source = null;
  const send = el("button", { type: "submit" }, streaming ? "Listen" : "Send");
  const stop = el("button", { type: "button", class: "secondary" }, "Stop");
  stop.hidden = true;
  stop.addEventListener("click", () => { if (source) source.close(); source = null; stop.hidden = true; });
  form.append(el("p", {}, send, stop), output);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const url = buildUrl(path, form);
    if (streaming) {
      if (source) source.close();
      const pre = el("pre", {}, "");
      output.textContent = ""; output.append(pre);
      source = new EventSource(url);
      stop.hidden = false;
      const append = (line) => { pre.textContent = (line + "\n" + pre.textContent).slice(0, MAX_SHOWN); };
      for (const name of ["run_start", "run_end", "step_start", "step_end", "dropped"]) {
        source.addEventListener(name, (message) => append(name + " " + message.data));
      }
      source.onerror = () => append("(connection lost; retrying)");
      return;
    }
    const init = { method: method.toUpperCase(), headers: {} };
    if (bodyInput) { init.body = bodyInput.value; init.headers["Content-Type"] = "application/json"; }
    try {
      const response = await fetch(url, init);
      show(output, response.status, await response.text(), response.headers.get("Content-Type"));
    } catch (err) {
      output.textContent = "Request failed: " + err;
    }
  });
  const summary = el("summary", {}, el("span", { class: "method" }, method.toUpperCase()),
                     el("span", { class: "path" }, path), el("span", { class: "summary" }, op.summary || ""));
  return el("details", { class: "op" }, summary, el("p", { class: "body" }, op.description || ""), form);
}

async function main() {
  const response = await fetch("/openapi.json");
  const spec = await response.json();
  document.getElementById("title").textContent = spec.info.title + " " + spec.info.version;
  document.getElementById("lead").textContent = spec.info.description;
  const byTag = new Map();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(spec, path, method, op));
    }
  }
  const ops = document.getElementById("ops");
  for (const [tag, nodes] of byTag) ops.append(el("h2", {}, tag), ...nodes);
}
main().catch((err) => { document.getElementById("lead").textContent = "Could not load /openapi.json: " + err; });
</script>
</body>
</html>
"""
