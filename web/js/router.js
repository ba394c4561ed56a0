// Deep links: the hash names the view, its subject and its state, e.g.
//   #/runs?q=rag&status=error     #/run/<run id>?step=<step id>&tab=tokens
//   #/compare?a=<run>&b=<run>     #/replay/<step id>    #/search?name=x    #/stats
// Reload, back and forward all land on the same place, and a link can be shared.

const listeners = [];

/** The current route: {view, id, params}. */
export function current() {
  return parse(location.hash);
}

export function parse(hash) {
  const text = (hash || "").replace(/^#\/?/, "");
  const [path, search = ""] = text.split("?");
  const [view, ...rest] = path.split("/").filter(Boolean);
  return {
    view: view || "runs",
    id: rest.length ? decodeURIComponent(rest.join("/")) : null,
    params: new URLSearchParams(search),
  };
}

/** The hash for a route: href("run", id, {step}) -> "#/run/<id>?step=<step>". */
export function href(view, id = null, params = {}) {
  let text = `#/${view}${id ? `/${encodeURIComponent(id)}` : ""}`;
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value != null && value !== "" && value !== false) search.set(key, value);
  }
  const query = search.toString();
  return query ? `${text}?${query}` : text;
}

/** Go to a route. replace: change this history entry instead of adding one. */
export function go(hash, { replace = false } = {}) {
  if (hash === location.hash) return;
  if (replace) {
    history.replaceState(history.state, "", hash);
    dispatch();
  } else {
    location.hash = hash;
  }
}

/** Change some params of the current route in place (a new history entry if push). */
export function update(changes, { push = false } = {}) {
  const route = current();
  const params = Object.fromEntries(route.params);
  for (const [key, value] of Object.entries(changes)) {
    if (value == null || value === "" || value === false) delete params[key];
    else params[key] = value;
  }
  go(href(route.view, route.id, params), { replace: !push });
}

export function onRoute(listener) {
  listeners.push(listener);
}

function dispatch() {
  const route = current();
  for (const listener of listeners) listener(route);
}

export function start() {
  window.addEventListener("hashchange", dispatch);
  dispatch();
}
