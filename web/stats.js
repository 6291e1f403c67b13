// The job counts: status cards with their share of all jobs, the slots in use,
// the runners pill, whether dispatch is paused, and the tab's title.
import { api } from "./api.js";
import { $, setText } from "./dom.js";
import { plural, STATUSES } from "./format.js";
import { showLimit } from "./forms.js";
import { showPaused } from "./pause.js";

let loadSeq = 0; // the latest stats request: a reply to an older one is dropped

export async function loadStats() {
  const seq = ++loadSeq;
  const { data: stats } = await api("GET", "api/stats");
  if (seq !== loadSeq) return;
  renderStats(stats);
}

/** Stats pushed by the event stream: newer than any stats request in flight. */
export function statsArrived(stats) {
  loadSeq++;
  renderStats(stats);
}

function renderStats(stats) {
  renderCounts(stats);
  const limit = stats.max_concurrent_jobs;
  const share = limit > 0 ? Math.min(100, (100 * stats.running) / limit) : 0;
  $("slots-fill").style.width = `${share}%`;
  setText($("slots-text"), `${stats.running} of ${limit} slots in use`);
  setRunners(stats.runners_connected);
  showLimit(limit);
  showPaused(stats.paused);
  document.title = stats.running > 0 ? `(${stats.running} running) Job Scheduler` : "Job Scheduler";
}

function renderCounts(stats) {
  const total = stats.total || 0;
  for (const status of STATUSES) {
    const count = stats[status] ?? 0;
    setText($(`stat-${status}`), count);
    if (status === "running") continue; // its bar shows the slots instead
    const percent = total > 0 ? (100 * count) / total : 0;
    $(`share-${status}-fill`).style.width = `${percent}%`;
    setText(
      $(`share-${status}`),
      total > 0
        ? `${percent < 1 && count > 0 ? "<1" : Math.round(percent)}% of ${plural(total, "job")}`
        : "no jobs yet",
    );
  }
}

/** The runners pill; null: the scheduler cannot be reached. */
export function setRunners(count) {
  const dot = $("runners-dot");
  dot.className = "dot";
  if (count == null) {
    dot.classList.add("bad");
    setText($("runners-text"), "offline");
    return;
  }
  dot.classList.add(count > 0 ? "ok" : "warn");
  setText($("runners-text"), `${plural(count, "runner")} connected`);
}
