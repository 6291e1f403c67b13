// Live updates: api/events (server-sent events) says which jobs changed and pushes
// the stats; the page reloads what the changes touch (a few rows, the page, the open
// job) at most once per FLUSH_MS, and the schedules when a job may be a schedule's; the
// open job's why-answer, the limits and the chart reload on their own throttles.
import { activityMayHaveChanged } from "./activity.js";
import { streamLogin } from "./api.js";
import { $, setText } from "./dom.js";
import { seriesMayHaveChanged } from "./chart.js";
import { capitalize } from "./format.js";
import { limitsMayHaveChanged } from "./limits.js";
import { setBanner } from "./notices.js";
import { loadDetail, openJobId } from "./panels.js";
import { markUpdated, refreshNow, reportLoadError } from "./refresh.js";
import { jobAppeared } from "./schedules.js";
import { statsArrived } from "./stats.js";
import { changeFor, loadJobs, refreshRow } from "./table.js";
import { whyMayHaveChanged } from "./why.js";

const FLUSH_MS = 250; // at most one burst of refreshes per this, however many events
const MAX_ROW_FETCHES = 8; // more changed rows than this: reload the page instead
const FIRST_RECONNECT_MS = 1000;
const RECONNECT_MAX_MS = 15000;

let source = null; // the EventSource of api/events
let reconnectTimer = null;
let reconnectDelay = FIRST_RECONNECT_MS;
const pendingRows = new Set(); // ids of rows on this page to fetch again
let pendingPage = false; // reload the page: a job may have joined or left it
let pendingDetail = false; // reload the open detail panel
let flushTimer = null;
let lastFlush = 0;

let attempt = 0; // which connectLive() is the latest: an older one gives up

/** Opens api/events; the browser reconnects by itself, and we do when it gives up. */
export async function connectLive() {
  clearTimeout(reconnectTimer);
  if (source) source.close();
  source = null;
  const mine = ++attempt;
  try {
    await streamLogin();
  } catch {
    // Refused (a 401 opens the token dialog) or unreachable: try again later.
    if (mine === attempt) retryLater();
    return;
  }
  if (mine !== attempt) return;
  const opened = new EventSource("api/events");
  source = opened;
  // A replaced stream may still deliver an event or two: only the current one counts.
  const current = (handler) => (event) => {
    if (opened === source) handler(event);
  };
  opened.addEventListener("ready", current(onReady));
  opened.addEventListener("resync", current(onResync));
  opened.addEventListener("job", current(onJob));
  opened.addEventListener("stats", current(onStats));
  opened.addEventListener("error", current(onError));
}

// `ready`: the gateway is subscribed to the scheduler's events. Whatever changed
// while we were not (first load, or a gap before a reconnect): reload once.
function onReady() {
  reconnectDelay = FIRST_RECONNECT_MS;
  setLive("live");
  refreshNow();
}

// `resync`: the scheduler may have missed changes (its database connection came back):
// reload everything once, as on `ready`.
function onResync() {
  refreshNow();
}

function onJob(event) {
  const data = parseData(event);
  if (data && typeof data.job_id === "number") jobChanged(data);
  whyMayHaveChanged(); // another job's start or end moves the open one in line
}

function onStats(event) {
  const stats = parseData(event);
  if (!stats) return;
  statsArrived(stats);
  limitsMayHaveChanged();
  activityMayHaveChanged();
  seriesMayHaveChanged();
  whyMayHaveChanged(); // a limit or the pause may have changed
  markUpdated();
}

// Both the connection's failures and the gateway's own `event: error` (the
// scheduler is away; the gateway then ends the stream and the browser retries).
function onError(event) {
  const data = event.data ? parseData(event) : null;
  if (data && data.message) setBanner(`${capitalize(data.message)} — reconnecting…`);
  setLive("reconnecting");
  // The browser gave up (a 401, a 503, a proxy's error page): retry, more slowly each time.
  if (source.readyState === EventSource.CLOSED) retryLater();
}

function retryLater() {
  setLive("reconnecting");
  reconnectTimer = setTimeout(connectLive, reconnectDelay);
  reconnectDelay = Math.min(reconnectDelay * 2, RECONNECT_MAX_MS);
}

function parseData(event) {
  try {
    return JSON.parse(event.data);
  } catch {
    return null;
  }
}

/** The live pill: connecting | live | reconnecting. */
function setLive(mode) {
  $("live-pill").dataset.state = mode;
  $("live-dot").className = `dot ${mode === "live" ? "ok" : mode === "reconnecting" ? "bad" : "warn"}`;
  setText(
    $("live-text"),
    mode === "live" ? "Live" : mode === "reconnecting" ? "Reconnecting…" : "Connecting…",
  );
}

function jobChanged(event) {
  const id = event.job_id;
  const open = id === openJobId();
  if (open) pendingDetail = true; // which reloads its row as well
  const change = changeFor(id, event.status);
  if (change === "page") pendingPage = true;
  else if (change === "row" && !open) pendingRows.add(id);
  // A waiting job is new (or queued again): a schedule may have made it.
  if (event.status === "queued" || event.status === "scheduled") jobAppeared();
  markUpdated();
  scheduleFlush();
}

/** The page of jobs may have changed (a job joined, left or vanished): reload it soon. */
export function pageChanged() {
  pendingPage = true;
  scheduleFlush();
}

function scheduleFlush() {
  if (flushTimer !== null) return;
  if (!pendingPage && !pendingDetail && pendingRows.size === 0) return;
  const wait = Math.max(0, lastFlush + FLUSH_MS - Date.now());
  flushTimer = setTimeout(flush, wait);
}

/** What the events since the last flush call for: a few rows, the page, the detail. */
async function flush() {
  flushTimer = null;
  lastFlush = Date.now();
  const ids = [...pendingRows];
  const page = pendingPage || ids.length > MAX_ROW_FETCHES;
  const detail = pendingDetail;
  pendingRows.clear();
  pendingPage = false;
  pendingDetail = false;
  const work = page ? [loadJobs()] : ids.map(refreshRow);
  if (detail) work.push(loadDetail());
  const results = await Promise.allSettled(work);
  const failure = results.find((result) => result.status === "rejected");
  if (failure) reportLoadError(failure.reason);
  scheduleFlush(); // what arrived meanwhile
}
