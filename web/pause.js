// The pause switch: while paused, no new job starts (running ones go on, schedules
// still make jobs, which wait). Its state comes from api/config and api/stats.
import { api } from "./api.js";
import { $, setText } from "./dom.js";
import { toast } from "./notices.js";
import { refreshNow } from "./refresh.js";

let paused = null; // as the API last said; null: not known yet
let saving = false; // a change is on its way: answers from before it do not flip the switch

/** Shows the state the API reports; a value that is not a boolean (an older API) is ignored. */
export function showPaused(value) {
  if (typeof value !== "boolean" || saving) return;
  paused = value;
  const button = $("pause-switch");
  button.setAttribute("aria-checked", String(value));
  $("paused-pill").hidden = !value;
  setText(
    $("pause-state"),
    value
      ? "Paused: running jobs go on, nothing new starts."
      : "Jobs start as slots free up.",
  );
}

async function togglePaused() {
  if (paused === null) return;
  const wanted = !paused;
  const button = $("pause-switch");
  button.disabled = true;
  saving = true;
  try {
    const { data } = await api("PUT", "api/config", { paused: wanted });
    saving = false;
    showPaused(data.paused);
    toast(
      "success",
      data.paused ? "Paused: no new job starts." : "Resumed: jobs start again.",
    );
    refreshNow();
  } catch (error) {
    toast("error", `Could not ${wanted ? "pause" : "resume"}: ${error.message}`);
  } finally {
    saving = false;
    button.disabled = false;
  }
}

export function initPause() {
  $("pause-switch").addEventListener("click", togglePaused);
}
