// The two forms: create a job (its "more" section: priority, run at, dependencies,
// attempts, timeout, concurrency key), and set the limit of concurrent jobs.
import { api } from "./api.js";
import { $, markInvalid, setText } from "./dom.js";
import {
  FieldError,
  idList,
  inputForError,
  localDateTime,
  optionalInteger,
  optionalText,
} from "./fields.js";
import { toast } from "./notices.js";
import { showPaused } from "./pause.js";
import { refreshNow } from "./refresh.js";
import { showNewestPage } from "./table.js";

let configDirty = false; // the limit is being edited: updates do not overwrite the input

// The create form's inputs by the API field an error message names.
const JOB_INPUTS = {
  name: "job-name",
  command: "job-command",
  priority: "job-priority",
  run_at: "job-run-at",
  depends_on: "job-depends-on",
  max_attempts: "job-attempts",
  timeout_seconds: "job-timeout",
  concurrency_key: "job-key",
};
const MORE_INPUTS = [
  "job-priority",
  "job-run-at",
  "job-depends-on",
  "job-attempts",
  "job-timeout",
  "job-key",
];

/** The "more" section's values, only those given: the API's defaults stand for the rest. */
function moreOptions() {
  const options = {
    priority: optionalInteger("job-priority", "Priority"),
    run_at: localDateTime("job-run-at", "Run at"),
    max_attempts: optionalInteger("job-attempts", "Attempts"),
    timeout_seconds: optionalInteger("job-timeout", "Timeout"),
    concurrency_key: optionalText("job-key"),
  };
  const dependsOn = idList("job-depends-on", "Depends on");
  if (dependsOn.length > 0) options.depends_on = dependsOn;
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
}

/** Marks the input a message is about, opening the "more" section if it is in there. */
function showInvalid(input) {
  if (!input) return;
  markInvalid(input, true);
  if (MORE_INPUTS.includes(input.id)) $("create-more").open = true;
  input.focus();
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
  let options;
  try {
    options = moreOptions();
  } catch (error) {
    if (!(error instanceof FieldError)) throw error;
    showInvalid(error.input);
    toast("error", error.message);
    return;
  }
  const button = $("create-submit");
  button.disabled = true;
  try {
    const { data: job } = await api("POST", "api/jobs/create", { name, command, ...options });
    const when = job.status === "scheduled" ? ", scheduled" : "";
    toast("success", `Created job “${job.name}” (#${job.id}${when}).`);
    $("create-form").reset();
    nameInput.focus();
    showNewestPage(); // where the new job is
    refreshNow();
  } catch (error) {
    if (error.status === 409) markInvalid(nameInput, true);
    else showInvalid(inputForError(error.message, JOB_INPUTS));
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
  showPaused(data.paused);
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
  for (const id of Object.values(JOB_INPUTS)) {
    $(id).addEventListener("input", () => markInvalid($(id), false));
  }
  $("max-concurrent").addEventListener("input", () => {
    configDirty = true;
    markInvalid($("max-concurrent"), false);
  });
}
