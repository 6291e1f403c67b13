// The concurrency keys panel: each key's running jobs against its limit as a bar (no
// limit: the running count only), its limit edited in place, pause/resume, remove, and
// a form to limit a new key. Reloaded on the event stream's stats, at most every LIMITS_MS.
import { api } from "./api.js";
import { $, el, markInvalid, setText } from "./dom.js";
import { plural } from "./format.js";
import { toast } from "./notices.js";
import { setChartKeys } from "./chart.js";
import { whyMayHaveChanged } from "./why.js";

const LIMITS_MS = 1000;

const rows = new Map(); // key -> its <li>
const limits = new Map(); // key -> the API's object, as last loaded
let loadSeq = 0;
let timer = null;
let lastLoad = 0;

export async function loadLimits() {
  const seq = ++loadSeq;
  lastLoad = Date.now();
  const { data } = await api("GET", "api/limits");
  if (seq !== loadSeq) return;
  renderLimits(data.limits || []);
}

/** The stats changed (jobs started or ended): reload soon, throttled. */
export function limitsMayHaveChanged() {
  if (timer !== null) return;
  const wait = Math.max(0, lastLoad + LIMITS_MS - Date.now());
  timer = setTimeout(() => {
    timer = null;
    loadLimits().catch((error) => console.warn("limits:", error.message));
  }, wait);
}

function renderLimits(list) {
  const keys = list.map((limit) => limit.key);
  for (const [key, row] of rows) {
    if (!keys.includes(key)) {
      row.remove();
      rows.delete(key);
      limits.delete(key);
    }
  }
  const ul = $("limits-list");
  list.forEach((limit, index) => {
    let row = rows.get(limit.key);
    if (!row) {
      row = limitRow(limit.key);
      rows.set(limit.key, row);
    }
    if (ul.children[index] !== row) ul.insertBefore(row, ul.children[index] || null);
    limits.set(limit.key, limit);
    updateRow(row, limit);
  });
  $("limits-empty").hidden = list.length > 0;
  $("known-keys").replaceChildren(...keys.map((key) => el("option", { value: key })));
  setChartKeys(keys);
}

function limitRow(key) {
  const input = el("input", {
    type: "number",
    min: 1,
    max: 10000,
    step: 1,
    inputMode: "numeric",
    placeholder: "none",
    className: "limit-input",
    testid: "limit-input",
    ariaLabel: `Limit of ${key}`,
  });
  input.addEventListener("input", () => {
    input.dataset.dirty = "true";
    markInvalid(input, false);
  });
  const form = el(
    "form",
    { className: "limit-edit", noValidate: true },
    input,
    el("button", {
      type: "submit",
      className: "btn btn-small btn-ghost",
      textContent: "Save",
      testid: "limit-save",
      ariaLabel: `Save the limit of ${key}`,
    }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    saveLimit(key, input);
  });
  const toggle = actionButton("Pause", "toggle", () => togglePaused(key, toggle));
  const remove = actionButton("Remove", "remove", () => removeLimit(key, remove));
  return el(
    "li",
    { className: "limit", testid: "limit-row", dataset: { key } },
    el(
      "div",
      { className: "limit-head" },
      el("span", { className: "limit-key", testid: "limit-key", textContent: key, title: key }),
      el("span", {
        className: "badge badge-paused",
        testid: "limit-paused",
        textContent: "paused",
      }),
      el("span", { className: "limit-usage", testid: "limit-usage" }),
    ),
    el(
      "div",
      { className: "limit-bar", testid: "limit-bar", ariaHidden: "true" },
      el("span", { className: "limit-bar-fill", testid: "limit-bar-fill" }),
    ),
    el("div", { className: "limit-actions", dataset: { needs: "admin" } }, form, toggle, remove),
  );
}

function actionButton(label, action, run) {
  const button = el("button", {
    type: "button",
    className: `btn btn-small ${action === "remove" ? "btn-danger-ghost" : "btn-ghost"}`,
    textContent: label,
    testid: `limit-${action}`,
  });
  button.addEventListener("click", run);
  return button;
}

function updateRow(row, limit) {
  const { key, running, queued, paused } = limit;
  const max = limit.max_concurrent_jobs;
  row.dataset.paused = String(paused);
  row.dataset.full = String(max != null && running >= max);
  row.querySelector('[data-testid="limit-paused"]').hidden = !paused;
  const usage = max == null ? `${running} running · no limit` : `${running} of ${max} running`;
  setText(row.querySelector('[data-testid="limit-usage"]'), `${usage} · ${queued} queued`);
  const bar = row.querySelector('[data-testid="limit-bar"]');
  bar.hidden = max == null;
  const share = max ? Math.min(100, (100 * running) / max) : 0;
  bar.firstElementChild.style.width = `${share}%`;
  const input = row.querySelector('[data-testid="limit-input"]');
  if (!input.dataset.dirty && document.activeElement !== input) input.value = max ?? "";
  const toggle = row.querySelector('[data-testid="limit-toggle"]');
  setText(toggle, paused ? "Resume" : "Pause");
  toggle.ariaLabel = `${paused ? "Resume" : "Pause"} ${key}`;
  const remove = row.querySelector('[data-testid="limit-remove"]');
  remove.hidden = max == null && !paused; // nothing set: nothing to remove
  remove.ariaLabel = `Remove the limit of ${key}`;
}

/** The limit typed in, as the API takes it: a whole number 1..10000, or null for none. */
function readLimit(input) {
  const raw = input.value.trim();
  if (!raw) return null;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 10000) {
    throw new Error("A limit is a whole number from 1 to 10000 (empty: no limit).");
  }
  return value;
}

async function putLimit(key, body) {
  const { data } = await api("PUT", `api/limits/${encodeURIComponent(key)}`, body);
  limits.set(key, data);
  if (rows.has(key)) updateRow(rows.get(key), data);
  loadLimits().catch(() => {}); // the order and the other keys; a failure shows next time
  whyMayHaveChanged();
  return data;
}

async function saveLimit(key, input) {
  let max;
  try {
    max = readLimit(input);
  } catch (error) {
    markInvalid(input, true);
    toast("error", error.message);
    return;
  }
  const paused = limits.get(key)?.paused ?? false;
  try {
    delete input.dataset.dirty;
    const data = await putLimit(key, { max_concurrent_jobs: max, paused });
    input.value = data.max_concurrent_jobs ?? "";
    toast("success", `${key}: ${describeLimit(data.max_concurrent_jobs)}.`);
  } catch (error) {
    markInvalid(input, true);
    toast("error", `Could not set the limit of ${key}: ${error.message}`);
  }
}

async function togglePaused(key, button) {
  const limit = limits.get(key);
  if (!limit) return;
  button.disabled = true;
  try {
    const data = await putLimit(key, {
      max_concurrent_jobs: limit.max_concurrent_jobs,
      paused: !limit.paused,
    });
    toast(
      "success",
      data.paused ? `Paused ${key}: none of its jobs start.` : `Resumed ${key}.`,
    );
  } catch (error) {
    toast("error", `Could not ${limit.paused ? "resume" : "pause"} ${key}: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

async function removeLimit(key, button) {
  const question = `Remove the limit of “${key}”? Its jobs are then bounded by the global limit only.`;
  if (!confirm(question)) return;
  button.disabled = true;
  try {
    await api("DELETE", `api/limits/${encodeURIComponent(key)}`);
    toast("success", `Removed the limit of ${key}.`);
    await loadLimits();
    whyMayHaveChanged();
  } catch (error) {
    toast("error", `Could not remove the limit of ${key}: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

function describeLimit(max) {
  return max == null ? "no limit" : `at most ${plural(max, "job")} at once`;
}

async function addLimit(event) {
  event.preventDefault();
  const keyInput = $("limit-add-key");
  const maxInput = $("limit-add-max");
  const key = keyInput.value.trim();
  markInvalid(keyInput, !key);
  if (!key) {
    toast("error", "Name the key to limit.");
    keyInput.focus();
    return;
  }
  let max;
  try {
    max = readLimit(maxInput);
    if (max === null) throw new Error("Give the key a limit from 1 to 10000.");
  } catch (error) {
    markInvalid(maxInput, true);
    toast("error", error.message);
    maxInput.focus();
    return;
  }
  const button = $("limit-add-submit");
  button.disabled = true;
  try {
    const paused = limits.get(key)?.paused ?? false;
    const data = await putLimit(key, { max_concurrent_jobs: max, paused });
    toast("success", `${key}: ${describeLimit(data.max_concurrent_jobs)}.`);
    $("limit-add-form").reset();
    keyInput.focus();
  } catch (error) {
    markInvalid(keyInput, true);
    toast("error", `Could not limit ${key}: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

export function initLimits() {
  $("limit-add-form").addEventListener("submit", addLimit);
  for (const id of ["limit-add-key", "limit-add-max"]) {
    $(id).addEventListener("input", () => markInvalid($(id), false));
  }
}
