// The two forms: create a job, and set the limit of concurrent jobs.
import { api } from "./api.js";
import { $, markInvalid, setText } from "./dom.js";
import { toast } from "./notices.js";
import { refreshNow } from "./refresh.js";
import { showNewestPage } from "./table.js";

let configDirty = false; // the limit is being edited: updates do not overwrite the input

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
    showNewestPage(); // where the new job is
    refreshNow();
  } catch (error) {
    if (error.status === 409) markInvalid(nameInput, true);
    toast("error", `Could not create the job: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

/** The current limit, in the hint and, unless it is being edited, in the input. */
export function showLimit(limit) {
  setText($("config-current"), limit);
  const input = $("max-concurrent");
  if (!configDirty && document.activeElement !== input) input.value = String(limit);
}

export async function loadConfig() {
  const { data } = await api("GET", "api/config");
  showLimit(data.max_concurrent_jobs);
}

async function saveConfig(event) {
  event.preventDefault();
  const input = $("max-concurrent");
  const raw = input.value.trim();
  const value = Number(raw);
  if (!raw || !Number.isInteger(value)) {
    markInvalid(input, true);
    toast("error", "Max concurrent jobs must be a whole number.");
    return;
  }
  markInvalid(input, false);
  const button = $("config-submit");
  button.disabled = true;
  try {
    const { data } = await api("PUT", "api/config", { max_concurrent_jobs: value });
    configDirty = false;
    showLimit(data.max_concurrent_jobs);
    toast("success", `Max concurrent jobs set to ${data.max_concurrent_jobs}.`);
    refreshNow();
  } catch (error) {
    markInvalid(input, true);
    toast("error", `Could not update the config: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

export function initForms() {
  $("create-form").addEventListener("submit", createJob);
  $("config-form").addEventListener("submit", saveConfig);
  for (const id of ["job-name", "job-command"]) {
    $(id).addEventListener("input", () => markInvalid($(id), false));
  }
  $("max-concurrent").addEventListener("input", () => {
    configDirty = true;
    markInvalid($("max-concurrent"), false);
  });
}
