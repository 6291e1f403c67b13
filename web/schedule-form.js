// The schedule dialog: creates a schedule, or edits one (its name is its key and
// stays). The API's errors show inside the dialog, next to what they are about.
import { api } from "./api.js";
import { $, el, markInvalid, setText } from "./dom.js";
import { FieldError, inputForError, optionalInteger, optionalText } from "./fields.js";
import { toast } from "./notices.js";
import { applySchedule } from "./schedules.js";

// The dialog's inputs by the API field an error message names.
const INPUTS = {
  name: "schedule-name",
  command: "schedule-command",
  cron: "schedule-cron",
  every_seconds: "schedule-every",
  timezone: "schedule-timezone",
  overlap: "schedule-overlap",
  catchup_window_seconds: "schedule-catchup",
  priority: "schedule-priority",
  max_attempts: "schedule-attempts",
  timeout_seconds: "schedule-timeout",
  concurrency_key: "schedule-key",
};

let editing = null; // the name of the schedule being edited; null: a new one
let returnFocus = null; // where the focus goes back to when the dialog closes

/** Opens the dialog for a new schedule, or filled in with `schedule` to edit it. */
export function openScheduleForm(schedule) {
  editing = schedule ? schedule.name : null;
  returnFocus = document.activeElement;
  fill(schedule);
  showError(null);
  setText($("schedule-dialog-title"), schedule ? `Edit schedule “${schedule.name}”` : "New schedule");
  setText($("schedule-submit"), schedule ? "Save schedule" : "Create schedule");
  $("schedule-name").readOnly = Boolean(schedule);
  fillTimeZones();
  $("schedule-dialog").showModal();
  $(schedule ? "schedule-command" : "schedule-name").focus();
}

function fill(schedule) {
  $("schedule-form").reset(); // the defaults: UTC, by cron, skip
  for (const id of Object.values(INPUTS)) markInvalid($(id), false);
  if (schedule) {
    const byCron = schedule.cron != null;
    $("schedule-by-cron").checked = byCron;
    $("schedule-by-every").checked = !byCron;
    const values = {
      name: schedule.name,
      command: schedule.command,
      cron: schedule.cron ?? "",
      every_seconds: schedule.every_seconds ?? "",
      timezone: schedule.timezone,
      overlap: schedule.overlap,
      catchup_window_seconds: schedule.catchup_window_seconds,
      priority: schedule.priority,
      max_attempts: schedule.max_attempts,
      timeout_seconds: schedule.timeout_seconds ?? "",
      concurrency_key: schedule.concurrency_key ?? "",
    };
    for (const [field, value] of Object.entries(values)) $(INPUTS[field]).value = String(value);
    $("schedule-paused").checked = schedule.paused;
  }
  showRepeat();
}

/** Either the cron expression or the interval, as the radio buttons say. */
function showRepeat() {
  const byCron = $("schedule-by-cron").checked;
  $("schedule-cron-field").hidden = !byCron;
  $("schedule-every-field").hidden = byCron;
}

/** Every zone this browser knows, as suggestions; any other name may still be typed. */
function fillTimeZones() {
  const list = $("timezones");
  if (list.childElementCount > 0) return;
  let zones = [];
  try {
    zones = Intl.supportedValuesOf("timeZone");
  } catch {
    /* an older browser: the zone is typed in */
  }
  if (!zones.includes("UTC")) zones = ["UTC", ...zones];
  list.replaceChildren(...zones.map((zone) => el("option", { value: zone })));
}

function required(id, message) {
  const input = $(id);
  const value = input.value.trim();
  if (!value) throw new FieldError(input, message);
  return value;
}

/** The request body: what the form says, leaving the API's defaults for empty fields. */
function readForm() {
  const name = required("schedule-name", "Give the schedule a name.");
  required("schedule-command", "Give the schedule a command to run."); // sent as typed
  const body = {
    name,
    command: $("schedule-command").value,
    timezone: $("schedule-timezone").value.trim() || "UTC",
    overlap: $("schedule-overlap").value,
    paused: $("schedule-paused").checked,
  };
  if ($("schedule-by-cron").checked) {
    body.cron = required("schedule-cron", "Give a cron expression, such as 0 3 * * *.");
  } else {
    required("schedule-every", "Say every how many seconds it runs.");
    body.every_seconds = optionalInteger("schedule-every", "Every");
  }
  const optional = {
    priority: optionalInteger("schedule-priority", "Priority"),
    max_attempts: optionalInteger("schedule-attempts", "Attempts"),
    timeout_seconds: optionalInteger("schedule-timeout", "Timeout"),
    catchup_window_seconds: optionalInteger("schedule-catchup", "Catch-up"),
  };
  for (const [field, value] of Object.entries(optional)) {
    if (value !== undefined) body[field] = value;
  }
  // Cleared while editing: null takes the key away; a new schedule just leaves it out.
  const key = optionalText("schedule-key");
  if (key !== undefined || editing !== null) body.concurrency_key = key ?? null;
  return body;
}

/** A message in the dialog (null: none), and the input it is about marked and focused. */
function showError(message, input) {
  const box = $("schedule-error");
  box.hidden = !message;
  setText(box, message);
  if (input) {
    markInvalid(input, true);
    input.focus();
  }
}

async function submit(event) {
  event.preventDefault();
  const name = editing;
  let body;
  try {
    body = readForm();
  } catch (error) {
    if (!(error instanceof FieldError)) throw error;
    showError(error.message, error.input);
    return;
  }
  const button = $("schedule-submit");
  button.disabled = true;
  try {
    const { data } =
      name === null
        ? await api("POST", "api/schedules", body)
        : await api("PUT", `api/schedules/${encodeURIComponent(name)}`, body);
    $("schedule-dialog").close();
    applySchedule(data);
    toast("success", `${name === null ? "Created" : "Saved"} schedule “${data.name}”.`);
  } catch (error) {
    const input = error.status === 409 ? $("schedule-name") : inputForError(error.message, INPUTS);
    showError(`Could not ${name === null ? "create" : "save"} the schedule: ${error.message}`, input);
  } finally {
    button.disabled = false;
  }
}

export function initScheduleForm() {
  $("schedule-new").addEventListener("click", () => openScheduleForm(null));
  $("schedule-form").addEventListener("submit", submit);
  $("schedule-cancel").addEventListener("click", () => $("schedule-dialog").close());
  for (const radio of ["schedule-by-cron", "schedule-by-every"]) {
    $(radio).addEventListener("change", showRepeat);
  }
  for (const id of Object.values(INPUTS)) {
    $(id).addEventListener("input", () => markInvalid($(id), false));
  }
  // Escape, Cancel or a save: the focus goes back to where it was.
  $("schedule-dialog").addEventListener("close", () => {
    const back = returnFocus;
    returnFocus = null;
    if (back && back.isConnected && typeof back.focus === "function") back.focus();
  });
}
