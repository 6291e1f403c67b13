// The job detail panel: the job's facts, why it waits (why.js), its output (followed
// while it runs), its attempts, and the cancel and retry buttons.
import { api } from "./api.js";
import { $, el, setText } from "./dom.js";
import { ACTIVE, fmtDateTime, fmtDuration, fmtUntil, jobDuration } from "./format.js";
import { toast } from "./notices.js";
import { refreshNow, reportLoadError } from "./refresh.js";
import { applyJob, jobOnPage, selectRow } from "./table.js";
import { explainJob, hideWhy } from "./why.js";

const TAIL_MS = 1000; // a running job's output is fetched this often: chunks are not evented

let openId = null; // the job shown; null: the panel is closed
let loadSeq = 0; // bumped by each load and on close: a reply to an older one is dropped
let shownJob = null; // the copy of the open job last loaded
let outputKey = null; // what the output shown was loaded for; unchanged, it is not loaded again
let outputAttempt = 0; // the attempt whose output is shown; 0: the latest
let returnFocus = null; // where the focus goes back to when the panel closes
let tailTimer = null;

export function openJobId() {
  return openId;
}

export function openDetail(id) {
  const switching = openId !== null;
  if (!switching) returnFocus = document.activeElement;
  openId = id;
  shownJob = null;
  outputKey = null;
  outputAttempt = 0;
  $("detail-attempts-section").hidden = true;
  hideWhy();
  selectRow(id);
  const cached = jobOnPage(id);
  if (cached) renderDetail(cached);
  else clearDetail(id);
  renderOutput(null);
  showPanel(true);
  if (!switching) $("detail-close").focus();
  loadDetail().catch(reportLoadError);
}

function closeDetail() {
  if (openId === null) return;
  openId = null;
  shownJob = null;
  loadSeq++;
  scheduleTail(); // stops it
  hideWhy();
  showPanel(false);
  selectRow(null);
  const back = returnFocus;
  returnFocus = null;
  if (back && back.isConnected && typeof back.focus === "function") back.focus();
}

function showPanel(shown) {
  $("detail-overlay").hidden = !shown;
  $("job-detail").hidden = !shown;
  document.body.style.overflow = shown ? "hidden" : ""; // the page behind does not scroll
}

/** The panel of a job not on this page, until it is loaded. */
function clearDetail(id) {
  setText($("detail-id"), `Job #${id}`);
  setText($("detail-name"), "Loading…");
  for (const field of [
    "command",
    "exit-code",
    "attempt",
    "runner",
    "timeout",
    "priority",
    "key",
    "run-at",
    "depends-on",
    "reason",
  ]) {
    setText($(`detail-${field}`), "");
  }
  delete $("detail-depends-on").dataset.ids; // its buttons are gone
  for (const field of ["created", "started", "finished", "duration"]) {
    setText($(`detail-${field}`), "");
  }
  $("detail-status").hidden = true;
  $("detail-cancel").hidden = true;
  $("detail-retry").hidden = true;
}

function renderDetail(job) {
  setText($("detail-id"), `Job #${job.id}`);
  setText($("detail-name"), job.name);
  const status = $("detail-status");
  status.hidden = false;
  status.className = `badge badge-${job.status}`;
  setText(status, job.status);
  setText($("detail-command"), job.command);
  const exit = $("detail-exit-code");
  setText(exit, job.exit_code ?? "—");
  exit.classList.toggle("nonzero", job.exit_code != null && job.exit_code !== 0);
  setText($("detail-attempt"), `${job.attempt} of ${job.max_attempts}`);
  setText($("detail-runner"), job.runner_id || "—");
  setText($("detail-timeout"), job.timeout_seconds ? fmtDuration(job.timeout_seconds * 1000) : "none");
  setText($("detail-reason"), job.reason || "—");
  setText($("detail-priority"), job.priority ?? 0);
  setText($("detail-key"), job.concurrency_key || "none");
  renderDependencies(job.depends_on || []);
  renderTimes(job);
  $("detail-live").hidden = !ACTIVE.has(job.status);
  $("detail-cancel").hidden = !ACTIVE.has(job.status);
  $("detail-retry").hidden = ACTIVE.has(job.status);
}

/** Each job this one waits for, as a button that opens it. */
function renderDependencies(ids) {
  const dd = $("detail-depends-on");
  if (dd.dataset.ids === ids.join(",")) return; // unchanged: keep the buttons (and focus)
  dd.dataset.ids = ids.join(",");
  if (ids.length === 0) {
    dd.replaceChildren("none");
    return;
  }
  dd.replaceChildren(
    ...ids.map((id) =>
      el("button", {
        type: "button",
        className: "link-btn",
        textContent: `#${id}`,
        ariaLabel: `Open job ${id}`,
        testid: "detail-dependency",
        onclick: () => openDetail(id),
      }),
    ),
  );
}

function renderTimes(job) {
  // Null once it started (or for a job that never waited for a time).
  const runAt = $("detail-run-at");
  setText(runAt, job.run_at ? `${fmtDateTime(job.run_at)} (${fmtUntil(job.run_at)})` : "—");
  runAt.title = job.run_at || "";
  setText($("detail-created"), fmtDateTime(job.created_at));
  setText($("detail-started"), fmtDateTime(job.started_at));
  setText($("detail-finished"), fmtDateTime(job.finished_at));
  const duration = jobDuration(job);
  setText(
    $("detail-duration"),
    duration == null ? "—" : `${fmtDuration(duration)}${job.status === "running" ? " so far" : ""}`,
  );
}

/** The output of one attempt; null: none yet (or, without a job, still loading). */
function renderOutput(output, job) {
  const pre = $("detail-output");
  const note = $("detail-truncated");
  if (!output) {
    pre.classList.add("empty-output");
    setText(pre, job && !ACTIVE.has(job.status) ? "(no output)" : job ? "(no output yet)" : "Loading…");
    note.hidden = true;
    setText($("detail-output-attempt"), "");
    return;
  }
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  const first = pre.classList.contains("empty-output");
  const text = output.output || "";
  pre.classList.toggle("empty-output", !text);
  setText(pre, text || (ACTIVE.has(job.status) ? "(no output yet)" : "(no output)"));
  note.hidden = !output.truncated;
  setText($("detail-output-attempt"), output.attempt ? `· attempt ${output.attempt}` : "");
  // Follow the tail of a running job, unless the reader scrolled up.
  if (ACTIVE.has(job.status) && (atBottom || first)) pre.scrollTop = pre.scrollHeight;
}

export async function loadDetail() {
  const id = openId;
  if (id === null) return;
  const seq = ++loadSeq;
  try {
    await loadDetailJob(id, seq);
  } finally {
    if (seq === loadSeq) scheduleTail();
  }
}

async function loadDetailJob(id, seq) {
  const { data: job } = await api("GET", `api/jobs/${id}`).catch((error) => {
    if (error.status === 404 && openId === id) {
      closeDetail();
      toast("error", `Job #${id} no longer exists.`);
    }
    throw error;
  });
  if (seq !== loadSeq) return;
  shownJob = job;
  renderDetail(job);
  explainJob(job);
  applyJob(job); // its row too, without a second request
  // Output changes while the job is active; once it ends, fetch it one last time.
  const key = `${job.attempt}:${job.status}:${job.updated_at}:${outputAttempt}`;
  if (!ACTIVE.has(job.status) && key === outputKey) return;
  let output = null;
  try {
    ({ data: output } = await api("GET", outputPath(id)));
  } catch (error) {
    if (error.status !== 404) throw error; // 404: no attempt, so no output yet
  }
  if (seq !== loadSeq) return;
  outputKey = key;
  renderOutput(output, job);
  if (job.attempt > 1) await loadAttempts(id, seq);
}

function outputPath(id) {
  const attempt = outputAttempt ? `?attempt=${outputAttempt}` : "";
  return `api/jobs/${id}/output${attempt}`;
}

/** Every attempt of a retried job; a click shows that attempt's output. */
async function loadAttempts(id, seq) {
  const { data: attempts } = await api("GET", `api/jobs/${id}/attempts`);
  if (seq !== loadSeq) return;
  const shown = outputAttempt || attempts.length;
  $("detail-attempts").replaceChildren(
    ...attempts.map((a) => attemptRow(a, a.attempt === shown, a.attempt === attempts.length)),
  );
  $("detail-attempts-section").hidden = false;
}

function attemptRow(a, selected, latest) {
  const exit = el("td", { textContent: a.exit_code ?? "—" });
  exit.classList.toggle("nonzero", a.exit_code != null && a.exit_code !== 0);
  const tr = el(
    "tr",
    { dataset: { testid: "attempt-row", attempt: String(a.attempt) } },
    el("td", { textContent: String(a.attempt) }),
    el("td", { textContent: a.runner_id }),
    el("td", { textContent: fmtDateTime(a.started_at) }),
    exit,
    el("td", { textContent: a.reason || "—" }),
  );
  tr.classList.toggle("selected", selected);
  // The latest one as 0 ("the latest"): should the job run again, its new output shows.
  tr.addEventListener("click", () => showAttempt(latest ? 0 : a.attempt));
  return tr;
}

function showAttempt(attempt) {
  outputAttempt = attempt;
  outputKey = null;
  loadDetail().catch(reportLoadError);
}

/** While the open job runs, its output is fetched every TAIL_MS. */
function scheduleTail() {
  clearTimeout(tailTimer);
  tailTimer = null;
  if (openId === null || !shownJob || shownJob.status !== "running") return;
  tailTimer = setTimeout(tailOutput, TAIL_MS);
}

async function tailOutput() {
  tailTimer = null;
  const id = openId;
  const seq = loadSeq;
  try {
    const { data: output } = await api("GET", outputPath(id));
    if (seq === loadSeq && shownJob) {
      renderDetail(shownJob); // the duration "so far"
      renderOutput(output, shownJob);
    }
  } catch (error) {
    if (error.status !== 404) console.warn("output tail:", error.message);
  } finally {
    if (seq === loadSeq) scheduleTail();
  }
}

/** A running job's duration, and a scheduled one's time to go, tick without any request. */
export function tickDetail() {
  if (shownJob && ["running", "scheduled"].includes(shownJob.status)) renderDetail(shownJob);
}

async function jobAction(action) {
  const id = openId;
  if (id === null) return;
  const button = $(`detail-${action}`);
  button.disabled = true;
  try {
    const { data: job } = await api("POST", `api/jobs/${id}/${action}`);
    toast(
      "success",
      action === "cancel" ? `Cancelling job “${job.name}”.` : `Job “${job.name}” queued again.`,
    );
    outputKey = null;
    refreshNow();
  } catch (error) {
    toast("error", `Could not ${action} the job: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

export function initPanels() {
  $("detail-close").addEventListener("click", closeDetail);
  $("detail-overlay").addEventListener("click", closeDetail);
  $("detail-cancel").addEventListener("click", () => jobAction("cancel"));
  $("detail-retry").addEventListener("click", () => jobAction("retry"));
  // Escape closes the panel, unless it is meant for the token dialog on top of it.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && openId !== null && !$("auth-dialog").open) closeDetail();
  });
}
