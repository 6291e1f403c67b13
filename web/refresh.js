// The full reload (stats, the page of jobs, the open job, the schedules, the limits): at
// start, after an action or a reconnect, and every POLL_MS as a safety net under the
// event stream.
import { loadActivity } from "./activity.js";
import { ApiError } from "./api.js";
import { authPending, showTokenBanner } from "./auth.js";
import { $, setText } from "./dom.js";
import { capitalize } from "./format.js";
import { loadLimits } from "./limits.js";
import { setBanner } from "./notices.js";
import { loadDetail } from "./panels.js";
import { loadRole } from "./role.js";
import { loadSchedules } from "./schedules.js";
import { loadStats, setRunners } from "./stats.js";
import { loadJobs } from "./table.js";

const POLL_MS = 15000; // a safety net only: changes arrive as server-sent events

let pollTimer = null;

/** Reloads everything now, and polls again POLL_MS after. */
export function refreshNow() {
  clearTimeout(pollTimer);
  refresh().finally(schedule);
}

async function refresh() {
  const results = await Promise.allSettled([
    loadRole().then(loadActivity),
    loadStats(),
    loadJobs(),
    loadDetail(),
    loadSchedules(),
    loadLimits(),
  ]);
  const failure = results.find((result) => result.status === "rejected");
  if (failure) {
    reportLoadError(failure.reason);
    return;
  }
  if (!authPending()) setBanner(null);
  markUpdated();
}

function schedule() {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, POLL_MS);
}

async function poll() {
  if (!document.hidden && !authPending()) await refresh();
  schedule();
}

export function markUpdated() {
  setText(
    $("updated-pill"),
    `Updated ${new Date().toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })}`,
  );
}

/** A failed load shows in the banner; if the scheduler is away, the runners show offline. */
export function reportLoadError(error) {
  if (!(error instanceof ApiError)) {
    console.error(error);
    setBanner(`Something went wrong: ${error}`);
    return;
  }
  const retrying = "retrying…";
  if (error.status === 401) {
    showTokenBanner();
    return;
  }
  if (error.status === 503) {
    setBanner(`${capitalize(error.message)} — ${retrying}`);
  } else if (error.status === 0) {
    setBanner(`Cannot reach the API server — ${retrying}`);
  } else {
    setBanner(`The API answered ${error.status}: ${error.message}`);
    return;
  }
  setRunners(null);
}

export function initRefresh() {
  $("refresh-btn").addEventListener("click", refreshNow);
  // A hidden tab skips polls: once it shows again, it catches up at once.
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !authPending()) refreshNow();
  });
}
