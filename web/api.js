// The REST client: JSON over fetch with the bearer token; a failure is an ApiError
// whose message a person can read. URLs are relative ("api/jobs"), so the page
// also works behind a path prefix.

const TOKEN_KEY = "jobsched.token";

let token = readToken();
let onUnauthorized = () => {};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function readToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function hasToken() {
  return token !== "";
}

/** Keeps the token for the next requests, and in this browser; "" forgets it. */
export function storeToken(value) {
  token = value;
  try {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: keep the token for this page only */
  }
}

/** Called on every 401, before the request's promise rejects. */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/**
 * Readies the event stream: EventSource cannot send headers, and a token in its URL
 * would end up in logs, so with a token the gateway first sets a session cookie
 * (HttpOnly, for api/events only) that the stream's requests carry.
 */
export async function streamLogin() {
  if (token) await api("POST", "api/login");
}

/** Ends the session cookie; failures do not matter (the cookie then simply expires). */
export async function streamLogout() {
  try {
    await fetch("api/logout", { method: "POST", cache: "no-store" });
  } catch {
    /* offline: the cookie expires by itself */
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "cannot reach the API server");
  }
  const text = await response.text();
  const data = parseJson(text);
  if (!response.ok) {
    if (response.status === 401) onUnauthorized();
    throw new ApiError(response.status, errorMessage(response, text, data));
  }
  return { data, response };
}

function parseJson(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function errorMessage(response, text, data) {
  const detail = data && typeof data === "object" ? describeDetail(data.detail) : "";
  // A short plain-text body says more than the status line; an HTML error page does not.
  const fallback = text && text.length <= 200 && !text.trimStart().startsWith("<") ? text : "";
  return detail || fallback || `HTTP ${response.status} ${response.statusText}`.trim();
}

/** FastAPI's `detail`: a string, or a list of {loc, msg} validation errors. */
function describeDetail(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map(describeItem).join("; ");
  if (detail && typeof detail === "object") {
    return detail.msg != null ? String(detail.msg) : JSON.stringify(detail);
  }
  return "";
}

function describeItem(item) {
  if (!item || typeof item !== "object") return String(item);
  const where = Array.isArray(item.loc)
    ? item.loc.filter((part) => !["body", "query", "path"].includes(part)).join(".")
    : "";
  const msg = item.msg != null ? String(item.msg) : JSON.stringify(item);
  return where ? `${where}: ${msg}` : msg;
}

/** The URL of the Link header's rel="next", made relative to this page (`base`: its path). */
export function nextLink(response, base = "api/jobs") {
  const header = response.headers.get("Link");
  if (!header) return null;
  for (const part of header.split(/,\s*(?=<)/)) {
    const match = /^<([^>]*)>(.*)$/.exec(part.trim());
    if (!match) continue;
    if (!/;\s*rel="?([^";]*\s)?next(\s[^";]*)?"?/i.test(match[2])) continue;
    // Keep only the query: the API's absolute path would skip a path prefix.
    const url = new URL(match[1], "http://placeholder/");
    return `${base}${url.search}`;
  }
  return null;
}
