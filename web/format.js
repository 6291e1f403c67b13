// How the dashboard names statuses and writes times, durations and counts.

export const STATUSES = ["scheduled", "queued", "running", "completed", "failed", "cancelled"];
// Not finished: it can be cancelled, not retried, and its output may still change.
export const ACTIVE = new Set(["scheduled", "queued", "running"]);

export function parseTime(iso) {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

export function fmtDateTime(iso) {
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

export function fmtRelative(iso) {
  const t = parseTime(iso);
  if (t == null) return "—";
  const secs = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (secs < 5) return "just now";
  if (secs < 60) return `${secs}s ago`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h ago`;
  return new Date(t).toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

/** "in 5s", "in 3m", "in 2h 5m", "in 3d 1h": how long until a time still to come; "due" once it passed. */
export function fmtUntil(iso) {
  const t = parseTime(iso);
  if (t == null) return "—";
  const secs = Math.round((t - Date.now()) / 1000);
  if (secs <= 0) return "due";
  if (secs < 60) return `in ${secs}s`;
  if (secs < 3600) return `in ${Math.floor(secs / 60)}m`;
  if (secs < 86400) return `in ${Math.floor(secs / 3600)}h ${Math.floor((secs % 3600) / 60)}m`;
  return `in ${Math.floor(secs / 86400)}d ${Math.floor((secs % 86400) / 3600)}h`;
}

/** An interval in seconds as "1h 30m", "45s", "2d". */
export function fmtEvery(seconds) {
  const units = [
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ];
  const parts = [];
  let left = seconds;
  for (const [unit, size] of units) {
    if (left >= size) {
      parts.push(`${Math.floor(left / size)}${unit}`);
      left %= size;
    }
  }
  return parts.join(" ") || "0s";
}

export function fmtDuration(ms) {
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
export function jobDuration(job) {
  const start = parseTime(job.started_at);
  if (start == null) return null;
  const end = parseTime(job.finished_at);
  if (end != null) return end - start;
  return job.status === "running" ? Date.now() - start : null;
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export function capitalize(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}
