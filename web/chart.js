// The last hour as charts (uPlot, vendored under vendor/uplot/): running jobs against
// the global limit (and a chosen key's running against its limit), jobs finished per
// minute by status, and the queue wait p50/p95, from api/series. Reloaded on the event
// stream's stats at most every SERIES_MS, and every SERIES_POLL_MS in any case.
import { api } from "./api.js";
import { $, el, setText } from "./dom.js";
import { plural } from "./format.js";

const WINDOW_S = 3600;
const SERIES_MS = 5000;
const SERIES_POLL_MS = 30000;
const HEIGHT = 180;
// Jobs come whole: no 0.5 on a count's axis.
const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000];
const COLORS = {
  running: "#0ea5e9",
  limit: "#dc2626",
  keyRunning: "#6d5bd0",
  keyLimit: "#d97706",
  completed: "#16a34a",
  failed: "#dc2626",
  cancelled: "#78716c",
  p50: "#6366f1",
  p95: "#d97706",
};

let uPlotModule = null; // the library's import, started on the first load
let plots = null; // {running, finished, wait}, made for plotsKey
let plotsKey = null;
let loadSeq = 0;
let lastLoad = 0;
let timer = null;
let pollTimer = null;

function library() {
  uPlotModule ??= import("./vendor/uplot/uPlot.esm.js").then((module) => module.default);
  return uPlotModule;
}

export async function loadSeries() {
  const seq = ++loadSeq;
  lastLoad = Date.now();
  clearTimeout(pollTimer);
  pollTimer = setTimeout(pollSeries, SERIES_POLL_MS);
  const key = $("chart-key").value;
  const query = `window=${WINDOW_S}${key ? `&key=${encodeURIComponent(key)}` : ""}`;
  const [uPlot, { data }] = await Promise.all([library(), api("GET", `api/series?${query}`)]);
  if (seq !== loadSeq) return;
  drawSeries(uPlot, data.points || [], key);
}

function pollSeries() {
  if (document.hidden) {
    pollTimer = setTimeout(pollSeries, SERIES_POLL_MS);
    return;
  }
  loadSeries().catch(warn);
}

/** Stats arrived: the current minute changed. Reload, at most every SERIES_MS. */
export function seriesMayHaveChanged() {
  if (timer !== null) return;
  const wait = Math.max(0, lastLoad + SERIES_MS - Date.now());
  timer = setTimeout(() => {
    timer = null;
    loadSeries().catch(warn);
  }, wait);
}

function warn(error) {
  console.warn("series:", error.message);
}

/** The keys the chart can follow, as the limits panel lists them; the choice stays. */
export function setChartKeys(keys) {
  const select = $("chart-key");
  const chosen = select.value;
  const wanted = ["", ...keys];
  if (chosen && !keys.includes(chosen)) wanted.push(chosen);
  const have = [...select.options].map((option) => option.value);
  if (have.join("\n") === wanted.join("\n")) return;
  select.replaceChildren(
    ...wanted.map((key) => el("option", { value: key, textContent: key || "none" })),
  );
  select.value = chosen;
}

function drawSeries(uPlot, points, key) {
  const xs = points.map((point) => Date.parse(point.at) / 1000);
  const column = (field) => points.map((point) => point[field] ?? null);
  const data = {
    running: [xs, column("running"), column("limit")],
    finished: [xs, column("completed"), column("failed"), column("cancelled")],
    wait: [xs, column("wait_p50_seconds"), column("wait_p95_seconds")],
  };
  if (key) data.running.push(column("key_running"), column("key_limit"));
  if (!plots || plotsKey !== key) makePlots(uPlot, key, data);
  else for (const [name, plot] of Object.entries(plots)) plot.setData(data[name]);
  for (const name of Object.keys(plots)) $(`chart-${name}`).dataset.points = String(xs.length);
  $("charts").dataset.points = String(xs.length);
  $("chart-empty").hidden = xs.length > 0;
  showCapped(points, key);
}

function makePlots(uPlot, key, data) {
  if (plots) for (const plot of Object.values(plots)) plot.destroy();
  const stepped = uPlot.paths.stepped({ align: 1 });
  const line = (label, stroke, extra = {}) => ({
    label,
    stroke,
    width: 2,
    paths: stepped,
    ...extra,
  });
  // Thick, dashed and red: at a glance, where the running area meets it, we are capped.
  const limitLine = (label, stroke) =>
    line(label, stroke, { width: 2.5, dash: [8, 5], points: { show: false } });
  const running = [
    line("running", COLORS.running, { fill: "rgba(14, 165, 233, 0.18)" }),
    limitLine("global limit", COLORS.limit),
  ];
  if (key) {
    running.push(
      line(`${key} running`, COLORS.keyRunning),
      limitLine(`${key} limit`, COLORS.keyLimit),
    );
  }
  plots = {
    running: plot(uPlot, "running", running, data.running, COUNT_STEPS),
    finished: plot(
      uPlot,
      "finished",
      [
        line("completed", COLORS.completed, { fill: "rgba(22, 163, 74, 0.12)" }),
        line("failed", COLORS.failed),
        line("cancelled", COLORS.cancelled),
      ],
      data.finished,
      COUNT_STEPS,
    ),
    wait: plot(
      uPlot,
      "wait",
      [
        { label: "p50", stroke: COLORS.p50, width: 2, value: fmtSeconds },
        { label: "p95", stroke: COLORS.p95, width: 2, value: fmtSeconds },
      ],
      data.wait,
    ),
  };
  plotsKey = key;
}

function plot(uPlot, name, series, data, steps) {
  const figure = $(`chart-${name}`);
  const options = {
    width: plotWidth(figure),
    height: HEIGHT,
    series: [{}, ...series],
    // From 0, with room above the highest line: a limit line never sits on the edge.
    scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.15] } },
    axes: [{}, steps ? { size: 44, incrs: steps } : { size: 44 }],
    legend: { live: false },
  };
  const made = new uPlot(options, data, figure);
  made.root.dataset.testid = `chart-${name}-plot`;
  return made;
}

function plotWidth(figure) {
  return Math.max(200, figure.clientWidth);
}

function fmtSeconds(_u, value) {
  if (value == null) return "—";
  return value < 10 ? `${value.toFixed(2)} s` : `${Math.round(value)} s`;
}

/** "We are capped": the latest minute at the limit, and for how long in the hour. */
function showCapped(points, key) {
  const note = $("chart-capped");
  const latest = points.at(-1);
  const atLimit = (running, limit) => limit != null && limit > 0 && running >= limit;
  const messages = [];
  if (latest && atLimit(latest.running, latest.limit)) {
    const minutes = points.filter((point) => atLimit(point.running, point.limit)).length;
    messages.push(
      `At the global limit: ${latest.running} of ${latest.limit} running, new jobs wait for a slot ` +
        `(capped ${plural(minutes, "minute")} of the last hour).`,
    );
  }
  if (key && latest && atLimit(latest.key_running, latest.key_limit)) {
    messages.push(`${key} is at its limit: ${latest.key_running} of ${latest.key_limit} running.`);
  }
  note.hidden = messages.length === 0;
  setText(note, messages.join(" "));
  $("chart-running").classList.toggle("capped-chart", messages.length > 0);
}

function resizePlots() {
  if (!plots) return;
  for (const [name, made] of Object.entries(plots)) {
    const width = plotWidth($(`chart-${name}`));
    if (width !== made.width) made.setSize({ width, height: HEIGHT });
  }
}

export function initChart() {
  $("chart-key").addEventListener("change", () => loadSeries().catch(warn));
  new ResizeObserver(resizePlots).observe($("charts"));
  loadSeries().catch(warn);
}
