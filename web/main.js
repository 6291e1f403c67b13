// The dashboard's entry point, loaded as a module by index.html (no build step):
// wires the modules to the page and starts loading.
//
// The modules call one another (an action asks for a refresh, the refresh reloads the
// table, a row opens the panel). ES modules allow such cycles because no module does
// anything when it is imported: only init() below starts things.
import { initActivity } from "./activity.js";
import { whenUnauthorized } from "./api.js";
import { initAuth, tokenRefused } from "./auth.js";
import { initChart } from "./chart.js";
import { initForms, loadConfig } from "./forms.js";
import { connectLive } from "./live.js";
import { initLimits } from "./limits.js";
import { initPanels, tickDetail } from "./panels.js";
import { initPause } from "./pause.js";
import { initRefresh, refreshNow } from "./refresh.js";
import { initScheduleForm } from "./schedule-form.js";
import { tickSchedules } from "./schedules.js";
import { initTable, tickRows } from "./table.js";

function init() {
  whenUnauthorized(tokenRefused);
  initAuth();
  initForms();
  initTable();
  initPanels();
  initPause();
  initScheduleForm();
  initLimits();
  initActivity();
  initRefresh();
  loadConfig().catch(() => {}); // stats carry the limit too; errors show via polling
  refreshNow();
  connectLive();
  initChart();
  // Durations, "2m ago" and "in 5s" go on ticking between loads.
  setInterval(() => {
    tickRows();
    tickDetail();
    tickSchedules();
  }, 1000);
}

init();
