// Jobs selected with the table's checkboxes, and what can be done to them at once:
// cancel or retry, through the API's bulk actions. The selection holds jobs on the
// page shown; a job that leaves the page leaves the selection.
import { api } from "./api.js";
import { $, setText } from "./dom.js";
import { plural } from "./format.js";
import { toast } from "./notices.js";
import { refreshNow } from "./refresh.js";
import { idsOnPage, showSelection } from "./table.js";

const selected = new Set();

export function isSelected(id) {
  return selected.has(id);
}

export function toggleSelected(id, on) {
  if (on) selected.add(id);
  else selected.delete(id);
  renderBar();
}

/** Drops the selected jobs that are no longer on the page. */
export function forgetMissing(onPage) {
  for (const id of [...selected]) if (!onPage.has(id)) selected.delete(id);
  renderBar();
}

function renderBar() {
  const count = selected.size;
  $("bulk-bar").hidden = count === 0;
  setText($("selected-count"), `${plural(count, "job")} selected`);
  const all = $("select-all");
  const onPage = idsOnPage();
  all.checked = onPage.length > 0 && onPage.every((id) => selected.has(id));
  all.indeterminate = count > 0 && !all.checked;
}

function selectAll(on) {
  selected.clear();
  if (on) for (const id of idsOnPage()) selected.add(id);
  showSelection();
  renderBar();
}

async function act(action, done) {
  const ids = [...selected];
  if (ids.length === 0) return;
  try {
    const { data } = await api("POST", `api/jobs/${action}`, { ids });
    const skipped = ids.length - data.changed;
    const passed = skipped ? ` (${plural(skipped, "job")} passed over)` : "";
    toast("success", `${done} ${plural(data.changed, "job")}${passed}.`);
    selectAll(false);
  } catch (error) {
    toast("error", `Could not ${action} the jobs: ${error.message}`);
  }
  refreshNow();
}

export function initBulk() {
  $("select-all").addEventListener("change", (event) => selectAll(event.target.checked));
  $("cancel-selected").addEventListener("click", () => act("cancel", "Cancelled"));
  $("retry-selected").addEventListener("click", () => act("retry", "Queued again"));
  $("clear-selection").addEventListener("click", () => selectAll(false));
}
