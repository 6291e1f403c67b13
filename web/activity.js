// The activity panel (admin only): the audit log, newest first — who created, cancelled,
// retried or changed what, and from where. Reloaded with the page and, throttled, when
// the event stream says something changed; "Older" pages on by keyset.
import { api, nextLink } from "./api.js";
import { $, el } from "./dom.js";
import { may } from "./role.js";

const PAGE = 20;
const ACTIVITY_MS = 2000;

let older = null; // the next page's URL, once the newest page is shown
let loadSeq = 0;
let timer = null;
let lastLoad = 0;

/** Reloads the newest page; does nothing for a role below admin (the API would refuse). */
export async function loadActivity() {
  if (!may("admin")) return;
  const seq = ++loadSeq;
  lastLoad = Date.now();
  const { data, response } = await api("GET", `api/audit?limit=${PAGE}`);
  if (seq !== loadSeq) return;
  $("activity-list").replaceChildren(...data.map(entryRow));
  showMore(response);
}

/** Something changed: reload soon, at most every ACTIVITY_MS. */
export function activityMayHaveChanged() {
  if (timer !== null || !may("admin")) return;
  const wait = Math.max(0, lastLoad + ACTIVITY_MS - Date.now());
  timer = setTimeout(() => {
    timer = null;
    loadActivity().catch((error) => console.warn("activity:", error.message));
  }, wait);
}

async function loadOlder() {
  if (!older) return;
  const seq = ++loadSeq;
  const { data, response } = await api("GET", older);
  if (seq !== loadSeq) return;
  $("activity-list").append(...data.map(entryRow));
  showMore(response);
}

function showMore(response) {
  older = nextLink(response, "api/audit");
  $("activity-older").hidden = !older;
  $("activity-empty").hidden = $("activity-list").children.length > 0;
}

function entryRow(entry) {
  const at = new Date(entry.at);
  return el(
    "li",
    { className: "activity-entry", testid: "activity-entry", dataset: { id: entry.id } },
    el("time", { className: "activity-at", dateTime: entry.at, title: at.toLocaleString() }, at.toLocaleTimeString()),
    el("span", { className: "activity-actor", testid: "activity-actor" }, entry.actor),
    el("span", { className: "activity-action", testid: "activity-action" }, entry.action),
    el("span", { className: "activity-target", testid: "activity-target" }, entry.target),
    el("span", { className: "activity-change", title: entry.remote ? `from ${entry.remote}` : "" }, change(entry)),
  );
}

/** What changed, in short: the fields whose values differ, as `field: before → after`. */
function change(entry) {
  const before = isObject(entry.before) ? entry.before : {};
  const after = isObject(entry.after) ? entry.after : {};
  const fields = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  const parts = fields
    .filter((field) => JSON.stringify(before[field]) !== JSON.stringify(after[field]))
    .map((field) => {
      const was = field in before ? `${show(before[field])} → ` : "";
      return `${field}: ${was}${field in after ? show(after[field]) : "—"}`;
    });
  return parts.join(", ");
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function show(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 59)}…` : text;
}

export function initActivity() {
  $("activity-older").addEventListener("click", () => {
    loadOlder().catch((error) => console.warn("activity:", error.message));
  });
}
