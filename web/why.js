// The job panel's answer to "why is it not running?" for a waiting job, from
// api/jobs/{id}/why. Other jobs finishing or starting change it, so it is asked again
// on the event stream's job and stats events, at most once per WHY_MS.
import { api } from "./api.js";
import { $, el, setText } from "./dom.js";
import { plural } from "./format.js";
import { openDetail, openJobId } from "./panels.js";

const WAITING = new Set(["queued", "scheduled"]);
const WHY_MS = 1000;

let jobId = null; // the waiting job whose answer is shown; null: none
let loadSeq = 0; // bumped by each load and on hide: a reply to an older one is dropped
let timer = null;
let lastLoad = 0;
let shown = ""; // the answer last drawn, as JSON: the same one is not drawn again

/** The open job was loaded: explain it if it waits, else hide the answer. */
export function explainJob(job) {
  if (!WAITING.has(job.status)) {
    hideWhy();
    return;
  }
  jobId = job.id;
  loadWhy();
}

export function hideWhy() {
  jobId = null;
  loadSeq++;
  clearTimeout(timer);
  timer = null;
  shown = "";
  $("detail-why").hidden = true;
}

/** Something changed elsewhere (a job, the limits): ask again soon, throttled. */
export function whyMayHaveChanged() {
  if (jobId === null || timer !== null) return;
  const wait = Math.max(0, lastLoad + WHY_MS - Date.now());
  timer = setTimeout(() => {
    timer = null;
    loadWhy();
  }, wait);
}

async function loadWhy() {
  const id = jobId;
  if (id === null) return;
  const seq = ++loadSeq;
  lastLoad = Date.now();
  let answer;
  try {
    ({ data: answer } = await api("GET", `api/jobs/${id}/why`));
  } catch (error) {
    if (seq === loadSeq) console.warn("why:", error.message);
    return;
  }
  if (seq !== loadSeq || id !== openJobId()) return;
  // It started meanwhile: its own event reloads the panel.
  if (!WAITING.has(answer.status)) {
    $("detail-why").hidden = true;
    return;
  }
  renderWhy(answer);
}

function renderWhy(answer) {
  const json = JSON.stringify(answer);
  const section = $("detail-why");
  section.hidden = false;
  if (json === shown) return; // unchanged: keep the holders' buttons (and focus)
  shown = json;
  section.dataset.runnable = String(Boolean(answer.runnable));
  setText($("detail-why-summary"), summary(answer));
  $("detail-why-blockers").replaceChildren(...(answer.blockers || []).map(blockerItem));
}

function summary(answer) {
  if (!answer.runnable) return answer.message || "Waiting.";
  const ahead = answer.position ?? 0;
  return ahead === 0
    ? "Runnable, next in line: it starts as soon as a runner takes it."
    : `Runnable, ${plural(ahead, "job")} ahead of it in line.`;
}

/** One line per blocker: its message, and the jobs holding the slots it waits for. */
function blockerItem(blocker) {
  const item = el(
    "li",
    { className: "why-blocker", testid: "why-blocker", dataset: { kind: blocker.kind } },
    el("span", { className: "why-kind", textContent: kindLabel(blocker.kind) }),
    el("span", { className: "why-message", textContent: blocker.message }),
  );
  const holders = blocker.holders || [];
  if (holders.length > 0) {
    item.append(
      el(
        "span",
        { className: "why-holders" },
        "held by ",
        ...holders.map((id) =>
          el("button", {
            type: "button",
            className: "link-btn",
            textContent: `#${id}`,
            ariaLabel: `Open job ${id}`,
            onclick: () => openDetail(id),
          }),
        ),
      ),
    );
  }
  return item;
}

const KIND_LABELS = {
  global_limit: "global limit",
  key_limit: "key limit",
  paused: "paused",
  key_paused: "key paused",
  not_before: "not yet",
  dependencies: "dependencies",
  no_runners: "no runners",
  runner_capacity: "runners full",
  behind: "in line",
};

function kindLabel(kind) {
  return KIND_LABELS[kind] || kind.replaceAll("_", " ");
}
