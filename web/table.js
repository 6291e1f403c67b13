// The jobs table: one page of jobs, newest first, of one status or all, and of those
// whose name or command holds the search text, paged through the API's Link header.
// Rows are kept and updated in place; their checkboxes select jobs for bulk.js.
import { api, nextLink } from "./api.js";
import { forgetMissing, isSelected, toggleSelected } from "./bulk.js";
import { $, el, setText } from "./dom.js";
import {
  fmtDateTime,
  fmtDuration,
  fmtRelative,
  fmtUntil,
  jobDuration,
  parseTime,
  plural,
} from "./format.js";
import { pageChanged } from "./live.js";
import { openDetail } from "./panels.js";
import { refreshNow } from "./refresh.js";

const PAGE_SIZE = 100;

let filter = ""; // the status shown; "": all of them
let search = ""; // the text searched for in names and commands; "": none
let pageUrl = null; // null: the newest page; otherwise the "next" link we followed
let pageStack = []; // the pages before this one, for "← Newer"
let nextUrl = null; // the Link header's rel="next", if there are older jobs
let jobs = new Map(); // id -> job, the jobs on the current page
const rows = new Map(); // id -> <tr>
let loadSeq = 0; // the latest page request: a reply to an older one is dropped
let selectedId = null; // the job open in the detail panel

export async function loadJobs() {
  const seq = ++loadSeq;
  const { data, response } = await api("GET", pageUrl || newestPageUrl());
  if (seq !== loadSeq) return;
  const page = Array.isArray(data) ? data : [];
  renderJobs(page);
  nextUrl = nextLink(response);
  renderPager(page.length);
}

function newestPageUrl() {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (filter) query.set("status", filter);
  if (search) query.set("q", search);
  return `api/jobs?${query}`;
}

function renderJobs(page) {
  // A reply that raced a newer copy of a job (from an event) keeps the newer one.
  page = page.map((job) => {
    const known = jobs.get(job.id);
    return known && isOlder(job, known) ? known : job;
  });
  placeRows(page);
  jobs = new Map(page.map((job) => [job.id, job]));
  forgetMissing(jobs);
  const empty = $("jobs-empty");
  empty.hidden = page.length > 0;
  const which = filter ? `${filter} jobs` : "jobs";
  setText(
    empty,
    search
      ? `No ${which} match “${search}”.`
      : filter
        ? `No ${filter} jobs.`
        : "No jobs yet — create one above.",
  );
}

/** Puts a row per job in order, reusing the rows already there, and drops the rest. */
function placeRows(page) {
  const body = $("jobs-body");
  const seen = new Set();
  let previous = null;
  for (const job of page) {
    let tr = rows.get(job.id);
    if (!tr) {
      tr = createRow(job.id);
      rows.set(job.id, tr);
    }
    updateRow(tr, job);
    seen.add(job.id);
    const expected = previous ? previous.nextSibling : body.firstChild;
    if (tr !== expected) body.insertBefore(tr, expected);
    previous = tr;
  }
  for (const [id, tr] of rows) {
    if (!seen.has(id)) {
      tr.remove();
      rows.delete(id);
    }
  }
}

function renderPager(count) {
  $("older-btn").hidden = !nextUrl;
  $("newer-btn").hidden = pageStack.length === 0;
  const page = pageStack.length + 1;
  setText(
    $("pager-info"),
    count === 0
      ? ""
      : `Showing ${plural(count, "job")}${page > 1 ? ` · page ${page}` : " · newest first"}`,
  );
}

function createRow(id) {
  const tr = el("tr", { tabIndex: 0, testid: "job-row", dataset: { jobId: String(id) } });
  const check = el("input", {
    type: "checkbox",
    testid: "row-select",
    ariaLabel: `Select job ${id}`,
  });
  // Its clicks and keys are its own, not the row's (which opens the job).
  check.addEventListener("click", (event) => event.stopPropagation());
  check.addEventListener("keydown", (event) => event.stopPropagation());
  check.addEventListener("change", () => toggleSelected(id, check.checked));
  const select = el("td", { className: "cell-select", dataset: { needs: "operate" } }, check);
  select.addEventListener("click", (event) => event.stopPropagation());
  tr.append(
    select,
    el("td", { className: "cell-id", testid: "row-id" }),
    el("td", { className: "cell-name", testid: "row-name" }),
    el("td", { className: "cell-command", testid: "row-command" }),
    el("td", { className: "cell-status" }, badge("queued")),
    el("td", { className: "cell-exit", testid: "row-exit" }),
    el("td", { className: "cell-created", testid: "row-created" }),
    el("td", { className: "cell-duration", testid: "row-duration" }),
  );
  tr.addEventListener("click", () => openDetail(id));
  tr.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      openDetail(id);
    }
  });
  return tr;
}

function badge(status) {
  return el("span", { className: `badge badge-${status}`, testid: "row-status" }, status);
}

function updateRow(tr, job) {
  const [selectCell, idCell, nameCell, commandCell, statusCell, exitCell, createdCell, durationCell] =
    tr.children;
  selectCell.firstElementChild.checked = isSelected(job.id);
  tr.dataset.status = job.status;
  tr.classList.toggle("selected", job.id === selectedId);
  setText(idCell, `#${job.id}`);
  setText(nameCell, job.name);
  nameCell.title = job.name;
  setText(commandCell, job.command);
  commandCell.title = job.command;
  const status = statusCell.firstElementChild;
  status.className = `badge badge-${job.status}`;
  setText(status, job.status);
  const waiting = job.status === "scheduled" && Boolean(job.run_at);
  status.title = waiting ? `Not before ${fmtDateTime(job.run_at)}` : "";
  setText(exitCell, job.exit_code ?? "");
  exitCell.classList.toggle("none", job.exit_code == null);
  exitCell.classList.toggle("nonzero", job.exit_code != null && job.exit_code !== 0);
  setText(createdCell, fmtRelative(job.created_at));
  createdCell.title = fmtDateTime(job.created_at);
  // A job waiting for its time shows how long is left instead.
  const duration = jobDuration(job);
  setText(
    durationCell,
    waiting ? fmtUntil(job.run_at) : duration == null ? "" : fmtDuration(duration),
  );
  durationCell.classList.toggle("until", waiting);
}

/** Whether `a` is an older state of the job than `b` (a reply that raced a newer one). */
function isOlder(a, b) {
  if (a.attempt !== b.attempt) return a.attempt < b.attempt;
  const ta = parseTime(a.updated_at);
  const tb = parseTime(b.updated_at);
  return ta != null && tb != null && ta < tb;
}

/** Shows a fresh copy of one job in its row, if it is on this page and still belongs. */
export function applyJob(job) {
  const known = jobs.get(job.id);
  if (!known || isOlder(job, known)) return;
  if (filter && job.status !== filter) {
    pageChanged(); // it left this filter
    return;
  }
  jobs.set(job.id, job);
  const tr = rows.get(job.id);
  if (tr) updateRow(tr, job);
}

export async function refreshRow(id) {
  try {
    const { data: job } = await api("GET", `api/jobs/${id}`);
    applyJob(job);
  } catch (error) {
    if (error.status !== 404) throw error;
    pageChanged(); // the job is gone
  }
}

/** What a job's change to `status` means for this page: reload the "page", one "row", or null. */
export function changeFor(id, status) {
  if (jobs.has(id)) return filter && status !== filter ? "page" : "row";
  return mightJoinPage(id, status) ? "page" : null;
}

/** Could a job with this id and status be on the page we show, though it is not? */
function mightJoinPage(id, status) {
  if (filter && status !== filter) return false;
  const ids = [...jobs.keys()];
  if (ids.length === 0) return pageUrl === null;
  const lowest = Math.min(...ids);
  if (pageUrl === null) return ids.length < PAGE_SIZE || id > lowest;
  return id > lowest && id < Math.max(...ids); // an older page: only inside its range
}

/** The job as this page last had it, if it is on the page. */
export function jobOnPage(id) {
  return jobs.get(id);
}

export function selectRow(id) {
  selectedId = id;
  for (const [rowId, tr] of rows) tr.classList.toggle("selected", rowId === id);
}

/** Running durations and "2m ago" go on ticking without any request. */
export function tickRows() {
  for (const [id, job] of jobs) {
    const tr = rows.get(id);
    if (tr) updateRow(tr, job);
  }
}

/** The ids of the jobs on this page, newest first. */
export function idsOnPage() {
  return [...jobs.keys()];
}

/** Ticks each row's checkbox as the selection has it. */
export function showSelection() {
  for (const [id, tr] of rows) tr.firstElementChild.firstElementChild.checked = isSelected(id);
}

/** Back to the first page (the next refresh loads it). */
export function showNewestPage() {
  pageUrl = null;
  pageStack = [];
}

function goOlder() {
  if (!nextUrl) return;
  pageStack.push(pageUrl);
  pageUrl = nextUrl;
  refreshNow();
  $("jobs-title").scrollIntoView({ block: "nearest", behavior: "smooth" });
}

function goNewer() {
  if (pageStack.length === 0) return;
  pageUrl = pageStack.pop();
  refreshNow();
}

function setFilter(status) {
  filter = status;
  showNewestPage();
  $("status-filter").value = status;
  for (const card of document.querySelectorAll(".stat")) {
    card.classList.toggle("active", card.dataset.filter === status);
  }
  refreshNow();
}

function setSearch(text) {
  if (text === search) return;
  search = text;
  showNewestPage();
  refreshNow();
}

export function initTable() {
  $("status-filter").addEventListener("change", (event) => setFilter(event.target.value));
  // Searched once typing pauses, not on every key.
  let typing = null;
  $("job-search").addEventListener("input", (event) => {
    clearTimeout(typing);
    typing = setTimeout(() => setSearch(event.target.value.trim()), 250);
  });
  // A status card filters by its status; clicked again, it shows all jobs.
  for (const card of document.querySelectorAll(".stat")) {
    card.addEventListener("click", () =>
      setFilter(filter === card.dataset.filter ? "" : card.dataset.filter),
    );
  }
  $("older-btn").addEventListener("click", goOlder);
  $("newer-btn").addEventListener("click", goNewer);
}
