// Small DOM helpers shared by every view.

/** el("div", {class: "x", onclick: fn, dataset: {a: 1}}, child, "text", ...) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child);
  }
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

/** A link inside the app: a plain <a href="#/..."> so middle-click and copy work. */
export function link(href, text, attrs = {}) {
  return el("a", { href, ...attrs }, text);
}

/** Replace the children of node. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A short message in the page's notice area (errors the user should see). */
export function notify(message, kind = "error") {
  const area = document.getElementById("notices");
  if (!area) return;
  const note = el("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" },
    el("span", {}, message),
    el("button", { class: "plain", "aria-label": "dismiss", onclick: () => note.remove() }, "×"));
  area.append(note);
  if (kind !== "error") setTimeout(() => note.remove(), 4000);
}

/** Debounce fn by ms. */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** Copy text to the clipboard, with a short confirmation. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    notify("copied", "info");
  } catch {
    notify("the browser did not allow copying; select the text instead", "info");
  }
}
