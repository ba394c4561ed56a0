// The one way the page talks to the daemon: JSON over fetch, same origin only.
// A 401 means this daemon wants its token: the login page sets it, then sends the user back.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let redirecting = false;

/** Send the user to the login page, remembering where they were. */
export function toLogin() {
  if (redirecting) return;
  redirecting = true;
  const here = location.pathname + location.search + location.hash;
  location.assign(`/login?next=${encodeURIComponent(here)}`);
}

async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { credentials: "same-origin", ...options });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "the daemon is not answering");
  }
  if (response.status === 401) {
    toLogin();
    throw new ApiError(401, "this daemon needs its token");
  }
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      message = (await response.json()).error || message;
    } catch { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  return response.json();
}

/** GET path?params as JSON; params with null, undefined or "" values are left out. */
export function get(path, params = null, options = {}) {
  return request(path + query(params), options);
}

export function post(path, body, options = {}) {
  return request(path, {
    ...options,
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

export function query(params) {
  if (!params) return "";
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value != null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
