// Job Scheduler dashboard: vanilla JS, no build step.
// All URLs are relative ("api/jobs"), so the page also works behind a path prefix.
// Job data only ever reaches the page through textContent / properties, never innerHTML.
"use strict";

(() => {
  const POLL_MS = 15000; // a safety net only: changes arrive as server-sent events
  const TAIL_MS = 1000; // a running job's output in the open detail panel
  const FLUSH_MS = 250; // at most one burst of refreshes per this, however many events
  const MAX_ROW_FETCHES = 8; // more changed rows than this: reload the page instead
  const RECONNECT_MAX_MS = 15000;
  const PAGE_SIZE = 100;
  const TOKEN_KEY = "jobsched.token";
  const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];
  const ACTIVE = new Set(["queued", "running"]);

  const $ = (id) => document.getElementById(id);

  const state = {
    token: readToken(),
    filter: "",
    pageUrl: null, // null: the newest page; otherwise the "next" link we followed
    pageStack: [], // the pages before this one, for "← Newer"
    nextUrl: null, // the Link header's rel="next", if there are older jobs
    jobs: new Map(), // id -> job, the jobs on the current page
    rows: new Map(), // id -> <tr>
    jobsSeq: 0,
    statsSeq: 0,
    detailId: null,
    detailSeq: 0,
    detailJob: null,
    outputKey: null,
    outputAttempt: 0, // the attempt whose output is shown; 0: the latest
    returnFocus: null,
    pollTimer: null,
    tailTimer: null,
    authPending: false,
    source: null, // the EventSource of api/events
    live: "connecting", // connecting | live | reconnecting
    reconnectTimer: null,
    reconnectDelay: 1000,
    pendingRows: new Set(), // ids of rows on this page to fetch again
    pendingPage: false, // reload the page: a job may have joined or left it
    pendingDetail: false, // reload the open detail panel
    flushTimer: null,
    lastFlush: 0,
    configDirty: false,
  };

  // ---------- helpers ----------

  function readToken() {
    try {
      return localStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  }

  function storeToken(token) {
    state.token = token;
    try {
      if (token) localStorage.setItem(TOKEN_KEY, token);
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      /* storage disabled: keep the token for this page only */
    }
    $("auth-clear").hidden = !token;
  }

  /** Creates an element; `props` are DOM properties (never innerHTML), children are nodes or text. */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "testid") node.dataset.testid = value;
      else node[key] = value;
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function markInvalid(input, invalid) {
    if (invalid) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function setText(node, text) {
    const value = text == null ? "" : String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function parseTime(iso) {
    if (!iso) return null;
    const t = Date.parse(iso);
    return Number.isNaN(t) ? null : t;
  }

  function fmtDateTime(iso) {
    const t = parseTime(iso);
    if (t == null) return "—";
    return new Date(t).toLocaleString(undefined, {
      year: "numeric",
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
  }

  function fmtRelative(iso) {
    const t = parseTime(iso);
    if (t == null) return "—";
    const secs = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (secs < 5) return "just now";
    if (secs < 60) return `${secs}s ago`;
    if (secs < 3600) return `${Math.floor(secs / 60)}m ago`;
    if (secs < 86400) return `${Math.floor(secs / 3600)}h ago`;
    return new Date(t).toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }

  function fmtDuration(ms) {
    if (ms == null || Number.isNaN(ms)) return "—";
    if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
    const secs = ms / 1000;
    if (secs < 60) return `${secs.toFixed(1)}s`;
    const whole = Math.floor(secs);
    if (whole < 3600) return `${Math.floor(whole / 60)}m ${whole % 60}s`;
    if (whole < 86400) return `${Math.floor(whole / 3600)}h ${Math.floor((whole % 3600) / 60)}m`;
    return `${Math.floor(whole / 86400)}d ${Math.floor((whole % 86400) / 3600)}h`;
  }

  /** How long the job ran, or has been running; null if it never started. */
  function jobDuration(job) {
    const start = parseTime(job.started_at);
    if (start == null) return null;
    const end = parseTime(job.finished_at);
    if (end != null) return end - start;
    return job.status === "running" ? Date.now() - start : null;
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** FastAPI's `detail`: a string, or a list of {loc, msg} validation errors. */
  function describeDetail(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((item) => {
          if (item && typeof item === "object") {
            const where = Array.isArray(item.loc)
              ? item.loc.filter((part) => !["body", "query", "path"].includes(part)).join(".")
              : "";
            const msg = item.msg != null ? String(item.msg) : JSON.stringify(item);
            return where ? `${where}: ${msg}` : msg;
          }
          return String(item);
        })
        .join("; ");
    }
    if (detail && typeof detail === "object") {
      return detail.msg != null ? String(detail.msg) : JSON.stringify(detail);
    }
    return "";
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
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
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const detail = data && typeof data === "object" ? describeDetail(data.detail) : "";
      const fallback = text && text.length <= 200 && !text.trimStart().startsWith("<") ? text : "";
      const message =
        detail || fallback || `HTTP ${response.status} ${response.statusText}`.trim();
      if (response.status === 401) askForToken();
      throw new ApiError(response.status, message);
    }
    return { data, response };
  }

  /** The URL of the Link header's rel="next", made relative to this page. */
  function nextLink(response) {
    const header = response.headers.get("Link");
    if (!header) return null;
    for (const part of header.split(/,\s*(?=<)/)) {
      const match = /^<([^>]*)>(.*)$/.exec(part.trim());
      if (!match) continue;
      if (!/;\s*rel="?([^";]*\s)?next(\s[^";]*)?"?/i.test(match[2])) continue;
      // Keep only the query: the API's absolute path would skip a path prefix.
      const url = new URL(match[1], "http://placeholder/");
      return `api/jobs${url.search}`;
    }
    return null;
  }

  // ---------- banner, toasts ----------

  function setBanner(message, action) {
    const banner = $("banner");
    if (!message) {
      banner.hidden = true;
      banner.replaceChildren();
      return;
    }
    const children = [el("span", { className: "banner-text" }, message)];
    if (action) {
      children.push(
        " ",
        el("button", {
          type: "button",
          className: "btn btn-ghost banner-action",
          textContent: action.label,
          onclick: action.run,
        }),
      );
    }
    banner.replaceChildren(...children);
    banner.hidden = false;
  }

  function toast(kind, message) {
    const box = $("toasts");
    const node = el(
      "div",
      {
        className: `toast toast-${kind}`,
        role: kind === "error" ? "alert" : "status",
        testid: "toast",
        dataset: { kind },
        title: "Click to dismiss",
      },
      el("span", { className: "toast-icon", ariaHidden: "true" }, kind === "error" ? "!" : "✓"),
      el("span", { className: "toast-message", testid: "toast-message" }, message),
    );
    const dismiss = () => {
      if (!node.isConnected) return;
      node.classList.add("leaving");
      setTimeout(() => node.remove(), 200);
    };
    node.addEventListener("click", dismiss);
    box.append(node);
    while (box.children.length > 5) box.firstElementChild.remove();
    setTimeout(dismiss, kind === "error" ? 7000 : 4000);
  }

  function reportPollError(error) {
    if (!(error instanceof ApiError)) {
      console.error(error);
      setBanner(`Something went wrong: ${error}`);
      return;
    }
    const retrying = "retrying…";
    if (error.status === 401) {
      setBanner("This server requires an API token.", { label: "Enter token", run: askForToken });
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

  function capitalize(text) {
    return text ? text[0].toUpperCase() + text.slice(1) : text;
  }

  // ---------- auth ----------

  function askForToken() {
    const dialog = $("auth-dialog");
    state.authPending = true;
    setText(
      $("auth-message"),
      state.token
        ? "The saved token was rejected. Paste a valid one; it is kept in this browser only."
        : "This server asks for a bearer token. Paste it below; it is kept in this browser only.",
    );
    if (!dialog.open) {
      $("auth-token").value = "";
      dialog.showModal();
      $("auth-token").focus();
    }
  }

  function saveToken(event) {
    event.preventDefault();
    const input = $("auth-token");
    const token = input.value.trim();
    if (!token) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    storeToken(token);
    state.authPending = false;
    $("auth-dialog").close();
    setBanner(null);
    loadConfig().catch(() => {});
    refreshNow();
    connectLive();
  }

  // ---------- stats & config ----------

  function setRunners(count) {
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

  function showLimit(limit) {
    setText($("config-current"), limit);
    const input = $("max-concurrent");
    if (!state.configDirty && document.activeElement !== input) input.value = String(limit);
  }

  async function loadStats() {
    const seq = ++state.statsSeq;
    const { data: stats } = await api("GET", "api/stats");
    if (seq !== state.statsSeq) return;
    renderStats(stats);
  }

  function renderStats(stats) {
    const total = stats.total || 0;
    for (const status of STATUSES) {
      const count = stats[status] ?? 0;
      setText($(`stat-${status}`), count);
      if (status === "running") continue;
      const percent = total > 0 ? (100 * count) / total : 0;
      $(`share-${status}-fill`).style.width = `${percent}%`;
      setText(
        $(`share-${status}`),
        total > 0
          ? `${percent < 1 && count > 0 ? "<1" : Math.round(percent)}% of ${plural(total, "job")}`
          : "no jobs yet",
      );
    }
    const limit = stats.max_concurrent_jobs;
    const share = limit > 0 ? Math.min(100, (100 * stats.running) / limit) : 0;
    $("slots-fill").style.width = `${share}%`;
    setText($("slots-text"), `${stats.running} of ${limit} slots in use`);
    setRunners(stats.runners_connected);
    showLimit(limit);
    document.title = stats.running > 0 ? `(${stats.running} running) Job Scheduler` : "Job Scheduler";
  }

  async function loadConfig() {
    const { data } = await api("GET", "api/config");
    showLimit(data.max_concurrent_jobs);
  }

  async function saveConfig(event) {
    event.preventDefault();
    const input = $("max-concurrent");
    const raw = input.value.trim();
    const value = Number(raw);
    if (!raw || !Number.isInteger(value)) {
      input.setAttribute("aria-invalid", "true");
      toast("error", "Max concurrent jobs must be a whole number.");
      return;
    }
    input.removeAttribute("aria-invalid");
    const button = $("config-submit");
    button.disabled = true;
    try {
      const { data } = await api("PUT", "api/config", { max_concurrent_jobs: value });
      state.configDirty = false;
      showLimit(data.max_concurrent_jobs);
      toast("success", `Max concurrent jobs set to ${data.max_concurrent_jobs}.`);
      refreshNow();
    } catch (error) {
      input.setAttribute("aria-invalid", "true");
      toast("error", `Could not update the config: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  // ---------- jobs table ----------

  function badge(status) {
    return el("span", { className: `badge badge-${status}`, testid: "row-status" }, status);
  }

  function setBadge(node, status) {
    node.className = `badge badge-${status}`;
    setText(node, status);
  }

  function createRow(id) {
    const tr = el("tr", { tabIndex: 0, testid: "job-row", dataset: { jobId: String(id) } });
    tr.append(
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

  function updateRow(tr, job) {
    const [idCell, nameCell, commandCell, statusCell, exitCell, createdCell, durationCell] =
      tr.children;
    tr.dataset.status = job.status;
    tr.classList.toggle("selected", job.id === state.detailId);
    setText(idCell, `#${job.id}`);
    setText(nameCell, job.name);
    nameCell.title = job.name;
    setText(commandCell, job.command);
    commandCell.title = job.command;
    setBadge(statusCell.firstElementChild, job.status);
    setText(exitCell, job.exit_code ?? "");
    exitCell.classList.toggle("none", job.exit_code == null);
    exitCell.classList.toggle("nonzero", job.exit_code != null && job.exit_code !== 0);
    setText(createdCell, fmtRelative(job.created_at));
    createdCell.title = fmtDateTime(job.created_at);
    const duration = jobDuration(job);
    setText(durationCell, duration == null ? "" : fmtDuration(duration));
  }

  /** Whether `a` is an older state of the job than `b` (a reply that raced a newer one). */
  function isOlder(a, b) {
    if (a.attempt !== b.attempt) return a.attempt < b.attempt;
    const ta = parseTime(a.updated_at);
    const tb = parseTime(b.updated_at);
    return ta != null && tb != null && ta < tb;
  }

  /** Shows a fresh copy of one job in its row, if it is on this page and still belongs. */
  function applyJob(job) {
    const known = state.jobs.get(job.id);
    if (!known || isOlder(job, known)) return;
    if (state.filter && job.status !== state.filter) {
      state.pendingPage = true; // it left this filter: the page changes
      scheduleFlush();
      return;
    }
    state.jobs.set(job.id, job);
    const tr = state.rows.get(job.id);
    if (tr) updateRow(tr, job);
  }

  async function refreshRow(id) {
    try {
      const { data: job } = await api("GET", `api/jobs/${id}`);
      applyJob(job);
    } catch (error) {
      if (error.status !== 404) throw error;
      state.pendingPage = true; // gone: the page changes
      scheduleFlush();
    }
  }

  function renderJobs(jobs) {
    const body = $("jobs-body");
    const seen = new Set();
    let previous = null;
    jobs = jobs.map((job) => {
      const known = state.jobs.get(job.id);
      return known && isOlder(job, known) ? known : job;
    });
    for (const job of jobs) {
      let tr = state.rows.get(job.id);
      if (!tr) {
        tr = createRow(job.id);
        state.rows.set(job.id, tr);
      }
      updateRow(tr, job);
      seen.add(job.id);
      const expected = previous ? previous.nextSibling : body.firstChild;
      if (tr !== expected) body.insertBefore(tr, expected);
      previous = tr;
    }
    for (const [id, tr] of state.rows) {
      if (!seen.has(id)) {
        tr.remove();
        state.rows.delete(id);
      }
    }
    state.jobs = new Map(jobs.map((job) => [job.id, job]));
    const empty = $("jobs-empty");
    empty.hidden = jobs.length > 0;
    setText(
      empty,
      state.filter ? `No ${state.filter} jobs.` : "No jobs yet — create one above.",
    );
  }

  async function loadJobs() {
    const seq = ++state.jobsSeq;
    let url = state.pageUrl;
    if (!url) {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (state.filter) query.set("status", state.filter);
      url = `api/jobs?${query}`;
    }
    const { data, response } = await api("GET", url);
    if (seq !== state.jobsSeq) return;
    const jobs = Array.isArray(data) ? data : [];
    renderJobs(jobs);
    state.nextUrl = nextLink(response);
    $("older-btn").hidden = !state.nextUrl;
    $("newer-btn").hidden = state.pageStack.length === 0;
    const page = state.pageStack.length + 1;
    setText(
      $("pager-info"),
      jobs.length === 0
        ? ""
        : `Showing ${plural(jobs.length, "job")}${page > 1 ? ` · page ${page}` : " · newest first"}`,
    );
  }

  function goOlder() {
    if (!state.nextUrl) return;
    state.pageStack.push(state.pageUrl);
    state.pageUrl = state.nextUrl;
    refreshNow();
    $("jobs-title").scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function goNewer() {
    if (state.pageStack.length === 0) return;
    state.pageUrl = state.pageStack.pop();
    refreshNow();
  }

  function setFilter(status) {
    state.filter = status;
    state.pageUrl = null;
    state.pageStack = [];
    $("status-filter").value = status;
    for (const card of document.querySelectorAll(".stat")) {
      card.classList.toggle("active", card.dataset.filter === status);
    }
    refreshNow();
  }

  async function createJob(event) {
    event.preventDefault();
    const nameInput = $("job-name");
    const commandInput = $("job-command");
    const name = nameInput.value.trim();
    const command = commandInput.value;
    markInvalid(nameInput, !name);
    markInvalid(commandInput, !command.trim());
    if (!name || !command.trim()) {
      toast("error", !name ? "Give the job a name." : "Give the job a command to run.");
      (!name ? nameInput : commandInput).focus();
      return;
    }
    const button = $("create-submit");
    button.disabled = true;
    try {
      const { data: job } = await api("POST", "api/jobs/create", { name, command });
      toast("success", `Created job “${job.name}” (#${job.id}).`);
      $("create-form").reset();
      nameInput.focus();
      if (state.pageUrl) {
        state.pageUrl = null;
        state.pageStack = [];
      }
      refreshNow();
    } catch (error) {
      if (error.status === 409) nameInput.setAttribute("aria-invalid", "true");
      toast("error", `Could not create the job: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  // ---------- detail panel ----------

  function openDetail(id) {
    const switching = state.detailId !== null;
    if (!switching) state.returnFocus = document.activeElement;
    state.detailId = id;
    state.detailJob = null;
    state.outputKey = null;
    state.outputAttempt = 0;
    $("detail-attempts-section").hidden = true;
    for (const [rowId, tr] of state.rows) tr.classList.toggle("selected", rowId === id);
    const cached = state.jobs.get(id);
    if (cached) renderDetail(cached);
    else clearDetail(id);
    renderOutput(null);
    $("detail-overlay").hidden = false;
    $("job-detail").hidden = false;
    document.body.style.overflow = "hidden";
    if (!switching) $("detail-close").focus();
    loadDetail().catch(reportPollError);
  }

  function closeDetail() {
    if (state.detailId === null) return;
    state.detailId = null;
    state.detailJob = null;
    state.detailSeq++;
    scheduleTail(); // stops it
    $("detail-overlay").hidden = true;
    $("job-detail").hidden = true;
    document.body.style.overflow = "";
    for (const tr of state.rows.values()) tr.classList.remove("selected");
    const back = state.returnFocus;
    state.returnFocus = null;
    if (back && back.isConnected && typeof back.focus === "function") back.focus();
  }

  function clearDetail(id) {
    setText($("detail-id"), `Job #${id}`);
    setText($("detail-name"), "Loading…");
    for (const field of ["command", "exit-code", "attempt", "runner", "timeout", "reason"]) {
      setText($(`detail-${field}`), "");
    }
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
    setText($("detail-created"), fmtDateTime(job.created_at));
    setText($("detail-started"), fmtDateTime(job.started_at));
    setText($("detail-finished"), fmtDateTime(job.finished_at));
    const duration = jobDuration(job);
    setText(
      $("detail-duration"),
      duration == null ? "—" : `${fmtDuration(duration)}${job.status === "running" ? " so far" : ""}`,
    );
    $("detail-live").hidden = !ACTIVE.has(job.status);
    $("detail-cancel").hidden = !ACTIVE.has(job.status);
    $("detail-retry").hidden = ACTIVE.has(job.status);
  }

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

  async function loadDetail() {
    const id = state.detailId;
    if (id === null) return;
    const seq = ++state.detailSeq;
    try {
      await loadDetailJob(id, seq);
    } finally {
      if (seq === state.detailSeq) scheduleTail();
    }
  }

  async function loadDetailJob(id, seq) {
    const { data: job } = await api("GET", `api/jobs/${id}`).catch((error) => {
      if (error.status === 404 && state.detailId === id) {
        closeDetail();
        toast("error", `Job #${id} no longer exists.`);
      }
      throw error;
    });
    if (seq !== state.detailSeq) return;
    state.detailJob = job;
    renderDetail(job);
    applyJob(job); // its row too, without a second request
    // Output changes while the job is active; once it ends, fetch it one last time.
    const key = `${job.attempt}:${job.status}:${job.updated_at}:${state.outputAttempt}`;
    if (!ACTIVE.has(job.status) && key === state.outputKey) return;
    let output = null;
    try {
      ({ data: output } = await api("GET", outputPath(id)));
    } catch (error) {
      if (error.status !== 404) throw error; // 404: no attempt, so no output yet
    }
    if (seq !== state.detailSeq) return;
    state.outputKey = key;
    renderOutput(output, job);
    if (job.attempt > 1) await loadAttempts(id, seq);
  }

  function outputPath(id) {
    const attempt = state.outputAttempt ? `?attempt=${state.outputAttempt}` : "";
    return `api/jobs/${id}/output${attempt}`;
  }

  /** Every attempt of a retried job; a click shows that attempt's output. */
  async function loadAttempts(id, seq) {
    const { data: attempts } = await api("GET", `api/jobs/${id}/attempts`);
    if (seq !== state.detailSeq) return;
    const body = $("detail-attempts");
    const shown = state.outputAttempt || attempts.length;
    body.replaceChildren(
      ...attempts.map((a) => {
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
        tr.classList.toggle("selected", a.attempt === shown);
        tr.addEventListener("click", () => showAttempt(a.attempt === attempts.length ? 0 : a.attempt));
        return tr;
      }),
    );
    $("detail-attempts-section").hidden = false;
  }

  function showAttempt(attempt) {
    state.outputAttempt = attempt;
    state.outputKey = null;
    loadDetail().catch(reportPollError);
  }

  /** While the open job runs, its output is fetched every TAIL_MS (chunks are not evented). */
  function scheduleTail() {
    clearTimeout(state.tailTimer);
    state.tailTimer = null;
    const job = state.detailJob;
    if (state.detailId === null || !job || job.status !== "running") return;
    state.tailTimer = setTimeout(tailOutput, TAIL_MS);
  }

  async function tailOutput() {
    state.tailTimer = null;
    const id = state.detailId;
    const seq = state.detailSeq;
    try {
      const { data: output } = await api("GET", outputPath(id));
      if (seq === state.detailSeq && state.detailJob) {
        renderDetail(state.detailJob); // the duration "so far"
        renderOutput(output, state.detailJob);
      }
    } catch (error) {
      if (error.status !== 404) console.warn("output tail:", error.message);
    } finally {
      if (seq === state.detailSeq) scheduleTail();
    }
  }

  async function jobAction(action) {
    const id = state.detailId;
    if (id === null) return;
    const button = $(`detail-${action}`);
    button.disabled = true;
    try {
      const { data: job } = await api("POST", `api/jobs/${id}/${action}`);
      toast(
        "success",
        action === "cancel" ? `Cancelling job “${job.name}”.` : `Job “${job.name}” queued again.`,
      );
      state.outputKey = null;
      refreshNow();
    } catch (error) {
      toast("error", `Could not ${action} the job: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  // ---------- live updates (server-sent events) ----------

  function setLive(mode) {
    state.live = mode;
    const pill = $("live-pill");
    pill.dataset.state = mode;
    $("live-dot").className = `dot ${mode === "live" ? "ok" : mode === "reconnecting" ? "bad" : "warn"}`;
    setText(
      $("live-text"),
      mode === "live" ? "Live" : mode === "reconnecting" ? "Reconnecting…" : "Connecting…",
    );
  }

  function markUpdated() {
    setText(
      $("updated-pill"),
      `Updated ${new Date().toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })}`,
    );
  }

  function parseData(event) {
    try {
      return JSON.parse(event.data);
    } catch {
      return null;
    }
  }

  /** Opens api/events; the browser reconnects by itself, and we do when it gives up. */
  function connectLive() {
    clearTimeout(state.reconnectTimer);
    if (state.source) state.source.close();
    const url = state.token ? `api/events?token=${encodeURIComponent(state.token)}` : "api/events";
    const source = new EventSource(url);
    state.source = source;
    const current = (handler) => (event) => {
      if (source === state.source) handler(event);
    };
    // `ready`: the gateway is subscribed to the scheduler's events. Whatever changed
    // while we were not (first load, or a gap before a reconnect): reload once.
    source.addEventListener(
      "ready",
      current(() => {
        state.reconnectDelay = 1000;
        setLive("live");
        refreshNow();
      }),
    );
    source.addEventListener(
      "job",
      current((event) => {
        const data = parseData(event);
        if (data && typeof data.job_id === "number") onJobEvent(data);
      }),
    );
    source.addEventListener(
      "stats",
      current((event) => {
        const stats = parseData(event);
        if (!stats) return;
        state.statsSeq++; // newer than any stats request in flight
        renderStats(stats);
        markUpdated();
      }),
    );
    // Both the connection's failures and the gateway's own `event: error` (the
    // scheduler is away; the gateway then ends the stream and the browser retries).
    source.addEventListener(
      "error",
      current((event) => {
        const data = event.data ? parseData(event) : null;
        if (data && data.message) setBanner(`${capitalize(data.message)} — reconnecting…`);
        setLive("reconnecting");
        if (source.readyState === EventSource.CLOSED) {
          // The browser gave up (a 401, a proxy's error page): retry, more slowly each time.
          state.reconnectTimer = setTimeout(connectLive, state.reconnectDelay);
          state.reconnectDelay = Math.min(state.reconnectDelay * 2, RECONNECT_MAX_MS);
        }
      }),
    );
  }

  /** Could a job with this id and status be on the page we show, though it is not? */
  function mightJoinPage(id, status) {
    if (state.filter && status !== state.filter) return false;
    const ids = [...state.jobs.keys()];
    if (ids.length === 0) return state.pageUrl === null;
    const lowest = Math.min(...ids);
    if (state.pageUrl === null) return ids.length < PAGE_SIZE || id > lowest;
    return id > lowest && id < Math.max(...ids); // an older page: only inside its range
  }

  function onJobEvent(event) {
    const id = event.job_id;
    if (id === state.detailId) state.pendingDetail = true;
    if (state.jobs.has(id)) {
      if (state.filter && event.status !== state.filter) state.pendingPage = true;
      else if (id !== state.detailId) state.pendingRows.add(id); // the detail load does it
    } else if (mightJoinPage(id, event.status)) {
      state.pendingPage = true;
    }
    markUpdated();
    scheduleFlush();
  }

  function scheduleFlush() {
    if (state.flushTimer !== null) return;
    if (!state.pendingPage && !state.pendingDetail && state.pendingRows.size === 0) return;
    const wait = Math.max(0, state.lastFlush + FLUSH_MS - Date.now());
    state.flushTimer = setTimeout(flush, wait);
  }

  /** What the events since the last flush call for: a few rows, the page, the detail. */
  async function flush() {
    state.flushTimer = null;
    state.lastFlush = Date.now();
    const ids = [...state.pendingRows];
    const page = state.pendingPage || ids.length > MAX_ROW_FETCHES;
    const detail = state.pendingDetail;
    state.pendingRows.clear();
    state.pendingPage = false;
    state.pendingDetail = false;
    const work = page ? [loadJobs()] : ids.map(refreshRow);
    if (detail) work.push(loadDetail());
    const results = await Promise.allSettled(work);
    const failure = results.find((result) => result.status === "rejected");
    if (failure) reportPollError(failure.reason);
    scheduleFlush(); // what arrived meanwhile
  }

  /** Durations of running jobs and "2m ago" go on ticking without any request. */
  function tickClock() {
    for (const [id, job] of state.jobs) {
      const tr = state.rows.get(id);
      if (tr) updateRow(tr, job);
    }
    if (state.detailJob && state.detailJob.status === "running") renderDetail(state.detailJob);
  }

  // ---------- fallback polling ----------

  async function refresh() {
    const results = await Promise.allSettled([loadStats(), loadJobs(), loadDetail()]);
    const failure = results.find((result) => result.status === "rejected");
    if (failure) {
      reportPollError(failure.reason);
      return;
    }
    if (!state.authPending) setBanner(null);
    markUpdated();
  }

  function schedule() {
    clearTimeout(state.pollTimer);
    state.pollTimer = setTimeout(tick, POLL_MS);
  }

  async function tick() {
    if (!document.hidden && !state.authPending) await refresh();
    schedule();
  }

  function refreshNow() {
    clearTimeout(state.pollTimer);
    refresh().finally(schedule);
  }

  // ---------- wiring ----------

  function init() {
    $("auth-clear").hidden = !state.token;
    $("create-form").addEventListener("submit", createJob);
    $("config-form").addEventListener("submit", saveConfig);
    $("max-concurrent").addEventListener("input", () => {
      state.configDirty = true;
      $("max-concurrent").removeAttribute("aria-invalid");
    });
    for (const id of ["job-name", "job-command"]) {
      $(id).addEventListener("input", () => $(id).removeAttribute("aria-invalid"));
    }
    $("status-filter").addEventListener("change", (event) => setFilter(event.target.value));
    for (const card of document.querySelectorAll(".stat")) {
      card.addEventListener("click", () =>
        setFilter(state.filter === card.dataset.filter ? "" : card.dataset.filter),
      );
    }
    $("refresh-btn").addEventListener("click", refreshNow);
    $("older-btn").addEventListener("click", goOlder);
    $("newer-btn").addEventListener("click", goNewer);
    $("detail-close").addEventListener("click", closeDetail);
    $("detail-overlay").addEventListener("click", closeDetail);
    $("detail-cancel").addEventListener("click", () => jobAction("cancel"));
    $("detail-retry").addEventListener("click", () => jobAction("retry"));
    $("auth-form").addEventListener("submit", saveToken);
    $("auth-dialog").addEventListener("close", () => {
      if (state.authPending) {
        setBanner("This server requires an API token.", { label: "Enter token", run: askForToken });
      }
    });
    $("auth-clear").addEventListener("click", () => {
      storeToken("");
      toast("success", "Token forgotten.");
      refreshNow();
      connectLive();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && state.detailId !== null && !$("auth-dialog").open) {
        closeDetail();
      }
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !state.authPending) refreshNow();
    });
    loadConfig().catch(() => {}); // stats carry the limit too; errors show via polling
    refreshNow();
    connectLive();
    setInterval(tickClock, 1000);
  }

  init();
})();
