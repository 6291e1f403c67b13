// The schedules panel: each schedule with its next run and last job, and buttons to
// edit, pause or resume, trigger and delete it. The list reloads with the page, when
// a job appears (a schedule may have made it) and when a next run comes due.
import { api } from "./api.js";
import { $, el, setText } from "./dom.js";
import { fmtDateTime, fmtEvery, fmtUntil, parseTime, plural } from "./format.js";
import { toast } from "./notices.js";
import { openDetail } from "./panels.js";
import { refreshNow, reportLoadError } from "./refresh.js";
import { openScheduleForm } from "./schedule-form.js";
import { showNewestPage } from "./table.js";

const EVENT_RELOAD_MS = 1000; // job events reload the list at most this often
const DUE_GRACE_MS = 1500; // a due run has made its job (or was skipped) by then
const STALE_DUE_MS = 5000; // a next run already past: look again this much later
const MAX_DUE_WAIT_MS = 60 * 60 * 1000; // further off, the page's own polling covers it

let schedules = new Map(); // name -> schedule, as last loaded
const rows = new Map(); // name -> <tr>
let loadSeq = 0; // the latest list request: a reply to an older one is dropped
let eventTimer = null;
let lastEventLoad = 0;
let dueTimer = null;

export async function loadSchedules() {
  const seq = ++loadSeq;
  const { data } = await api("GET", "api/schedules");
  if (seq !== loadSeq) return;
  const list = data && Array.isArray(data.schedules) ? data.schedules : [];
  schedules = new Map(list.map((schedule) => [schedule.name, schedule]));
  placeRows(list);
  $("schedules-empty").hidden = list.length > 0;
  planDueReload();
}

/** A job was made or queued again: if a schedule made it, its last job changed. */
export function jobAppeared() {
  if (eventTimer !== null) return;
  const wait = Math.max(0, lastEventLoad + EVENT_RELOAD_MS - Date.now());
  eventTimer = setTimeout(() => {
    eventTimer = null;
    lastEventLoad = Date.now();
    reloadQuietly();
  }, wait);
}

function reloadQuietly() {
  // A hidden tab catches up when it shows again (refresh.js reloads everything then).
  if (!document.hidden) loadSchedules().catch(reportLoadError);
}

/** Reloads just after the soonest next run: its fire moves it, even one that made no job. */
function planDueReload() {
  clearTimeout(dueTimer);
  const times = [...schedules.values()]
    .map((schedule) => parseTime(schedule.next_run_at))
    .filter((t) => t != null);
  if (times.length === 0) return;
  let wait = Math.min(...times) + DUE_GRACE_MS - Date.now();
  if (wait <= 0) wait = STALE_DUE_MS; // still due: no scheduler has fired it yet
  if (wait <= MAX_DUE_WAIT_MS) dueTimer = setTimeout(reloadQuietly, wait);
}

/** One schedule's new state, from an action's answer. */
export function applySchedule(schedule) {
  loadSeq++; // a list in flight may predate this answer
  schedules.set(schedule.name, schedule);
  if (rows.has(schedule.name)) {
    updateRow(rows.get(schedule.name), schedule);
    planDueReload();
  } else {
    loadSchedules().catch(reportLoadError); // a new one: its place is by name
  }
}

/** A row per schedule, by name, reusing the rows already there; the rest go. */
function placeRows(list) {
  const body = $("schedules-body");
  let previous = null;
  for (const schedule of list) {
    let tr = rows.get(schedule.name);
    if (!tr) {
      tr = createRow(schedule.name);
      rows.set(schedule.name, tr);
    }
    updateRow(tr, schedule);
    const expected = previous ? previous.nextSibling : body.firstChild;
    if (tr !== expected) body.insertBefore(tr, expected);
    previous = tr;
  }
  for (const [name, tr] of rows) {
    if (!schedules.has(name)) {
      tr.remove();
      rows.delete(name);
    }
  }
}

function createRow(name) {
  const lastJob = el("button", { type: "button", className: "link-btn", testid: "schedule-last-job" });
  lastJob.addEventListener("click", () => openDetail(Number(lastJob.dataset.jobId)));
  const actions = el(
    "div",
    { className: "row-actions" },
    actionButton("Edit", "edit", () => openScheduleForm(schedules.get(name)), "admin"),
    actionButton("Pause", "toggle", (button) => togglePaused(name, button), "admin"),
    actionButton("Run now", "trigger", (button) => trigger(name, button), "operate"),
    actionButton("Delete", "delete", (button) => remove(name, button), "admin"),
  );
  return el(
    "tr",
    { testid: "schedule-row", dataset: { name } },
    el(
      "td",
      { className: "cell-schedule" },
      el("span", { className: "schedule-name", testid: "schedule-name" }),
      el("span", { className: "schedule-command", testid: "schedule-command" }),
    ),
    el("td", { className: "cell-repeats", testid: "schedule-repeats" }),
    el("td", { className: "cell-timezone", testid: "schedule-timezone" }),
    el(
      "td",
      { className: "cell-next" },
      el("span", { testid: "schedule-next" }),
      el("span", { className: "sub", testid: "schedule-next-in" }),
    ),
    el(
      "td",
      { className: "cell-last" },
      lastJob,
      el("span", { className: "none", testid: "schedule-no-job" }, "none yet"),
      el("span", { className: "sub", testid: "schedule-skipped" }),
    ),
    el("td", { className: "cell-state" }, el("span", { testid: "schedule-state" })),
    el("td", { className: "cell-actions" }, actions),
  );
}

/** `needs`: the role the action takes (the page hides it from a lower one). */
function actionButton(label, action, run, needs) {
  const button = el("button", {
    type: "button",
    className: `btn btn-small ${action === "delete" ? "btn-danger-ghost" : "btn-ghost"}`,
    textContent: label,
    testid: `schedule-${action}`,
    dataset: { needs },
  });
  button.addEventListener("click", () => run(button));
  return button;
}

function updateRow(tr, schedule) {
  const [nameCell, repeatsCell, zoneCell, nextCell, lastCell, stateCell, actionsCell] = tr.children;
  const { name } = schedule;
  tr.dataset.paused = String(schedule.paused);
  setText(nameCell.children[0], name);
  nameCell.children[0].title = name;
  setText(nameCell.children[1], schedule.command);
  nameCell.children[1].title = schedule.command;
  setText(repeatsCell, schedule.cron ?? `every ${fmtEvery(schedule.every_seconds)}`);
  repeatsCell.title = repeatsCell.textContent;
  repeatsCell.classList.toggle("mono", schedule.cron != null);
  setText(zoneCell, schedule.timezone);
  renderNextRun(nextCell, schedule);
  renderLastJob(lastCell, schedule);
  const state = stateCell.firstElementChild;
  state.className = `badge badge-${schedule.paused ? "paused" : "active"}`;
  setText(state, schedule.paused ? "paused" : "active");
  const [edit, toggle, trigger, remove] = actionsCell.firstElementChild.children;
  setText(toggle, schedule.paused ? "Resume" : "Pause");
  edit.ariaLabel = `Edit schedule ${name}`;
  toggle.ariaLabel = `${schedule.paused ? "Resume" : "Pause"} schedule ${name}`;
  trigger.ariaLabel = `Run schedule ${name} now`;
  remove.ariaLabel = `Delete schedule ${name}`;
}

function renderNextRun(cell, schedule) {
  const [when, until] = cell.children;
  setText(when, schedule.next_run_at ? fmtInZone(schedule.next_run_at, schedule.timezone) : "—");
  when.title = schedule.next_run_at || "";
  setText(until, schedule.paused ? "paused" : fmtUntil(schedule.next_run_at));
}

function renderLastJob(cell, schedule) {
  const [link, none, skipped] = cell.children;
  const id = schedule.last_job_id;
  link.hidden = id == null;
  none.hidden = id != null;
  if (id != null) {
    link.dataset.jobId = String(id);
    setText(link, `#${id}`);
    link.ariaLabel = `Open job ${id}, made by ${schedule.name}`;
    link.title = schedule.last_run_at ? `Made ${fmtDateTime(schedule.last_run_at)}` : "";
  }
  const count = schedule.skipped_count || 0;
  setText(skipped, count > 0 ? `${plural(count, "run")} skipped` : "");
}

/** The time as the schedule's time zone writes it: the zone its cron speaks. */
function fmtInZone(iso, timeZone) {
  const t = parseTime(iso);
  if (t == null) return "—";
  const options = {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    timeZoneName: "short",
  };
  try {
    return new Date(t).toLocaleString(undefined, { ...options, timeZone });
  } catch {
    return fmtDateTime(iso); // a zone this browser does not know
  }
}

/** "in 42s" goes on ticking without any request. */
export function tickSchedules() {
  for (const [name, tr] of rows) {
    const schedule = schedules.get(name);
    if (schedule && !schedule.paused) setText(tr.children[3].children[1], fmtUntil(schedule.next_run_at));
  }
}

function schedulePath(name, action = "") {
  return `api/schedules/${encodeURIComponent(name)}${action ? `/${action}` : ""}`;
}

/** Runs an action with its button disabled; a failure is a toast, and a 404 reloads. */
async function act(button, what, run) {
  button.disabled = true;
  try {
    await run();
  } catch (error) {
    toast("error", `Could not ${what}: ${error.message}`);
    if (error.status === 404) loadSchedules().catch(reportLoadError);
  } finally {
    button.disabled = false;
  }
}

function togglePaused(name, button) {
  const action = schedules.get(name)?.paused ? "resume" : "pause";
  return act(button, `${action} the schedule`, async () => {
    const { data } = await api("POST", schedulePath(name, action));
    applySchedule(data);
    toast("success", data.paused ? `Paused schedule “${name}”.` : `Resumed schedule “${name}”.`);
  });
}

function trigger(name, button) {
  return act(button, "run the schedule", async () => {
    const { data: job } = await api("POST", schedulePath(name, "trigger"));
    toast("success", `Schedule “${name}” made job “${job.name}” (#${job.id}).`);
    showNewestPage(); // where the new job is
    refreshNow(); // the list too: its last job
  });
}

function remove(name, button) {
  if (!window.confirm(`Delete the schedule “${name}”? The jobs it made stay.`)) return;
  return act(button, "delete the schedule", async () => {
    await api("DELETE", schedulePath(name));
    loadSeq++; // a list in flight may still hold it
    schedules.delete(name);
    placeRows([...schedules.values()]);
    $("schedules-empty").hidden = schedules.size > 0;
    planDueReload();
    toast("success", `Deleted schedule “${name}”.`);
  });
}
