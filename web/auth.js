// The API token: asked for in a dialog when the API answers 401, kept in this
// browser, and forgotten on request.
import { hasToken, storeToken, streamLogout } from "./api.js";
import { $, markInvalid, setText } from "./dom.js";
import { loadConfig } from "./forms.js";
import { connectLive } from "./live.js";
import { setBanner, toast } from "./notices.js";
import { refreshNow } from "./refresh.js";
import { forgetRole } from "./role.js";

let pending = false; // a token is asked for: polling waits, and the banner stays
let dismissed = false; // the dialog was closed without a token: later 401s only show the banner

export function authPending() {
  return pending;
}

function askForToken() {
  const dialog = $("auth-dialog");
  pending = true;
  setText(
    $("auth-message"),
    hasToken()
      ? "The saved token was rejected. Paste a valid one; it is kept in this browser only."
      : "This server asks for a bearer token. Paste it below; it is kept in this browser only.",
  );
  if (!dialog.open) {
    $("auth-token").value = "";
    dialog.showModal();
    $("auth-token").focus();
  }
}

/** A 401 arrived: ask, unless the user has already said "not now". */
export function tokenRefused() {
  if (dismissed) showTokenBanner();
  else askForToken();
}

export function showTokenBanner() {
  setBanner("This server requires an API token.", { label: "Enter token", run: askForToken });
}

function showForgetButton() {
  $("auth-clear").hidden = !hasToken();
}

function saveToken(event) {
  event.preventDefault();
  const input = $("auth-token");
  const token = input.value.trim();
  markInvalid(input, !token);
  if (!token) {
    input.focus();
    return;
  }
  storeToken(token);
  forgetRole();
  showForgetButton();
  pending = false;
  dismissed = false;
  $("auth-dialog").close();
  setBanner(null);
  loadConfig().catch(() => {});
  refreshNow();
  connectLive();
}

async function forgetToken() {
  storeToken("");
  forgetRole();
  await streamLogout();
  showForgetButton();
  dismissed = false;
  toast("success", "Token forgotten.");
  refreshNow();
  connectLive();
}

export function initAuth() {
  showForgetButton();
  $("auth-form").addEventListener("submit", saveToken);
  // Dismissed without a token (Escape): the banner offers the dialog again, and
  // answers still in flight do not reopen it under the user's hand.
  $("auth-dialog").addEventListener("close", () => {
    if (!pending) return;
    dismissed = true;
    showTokenBanner();
  });
  $("auth-clear").addEventListener("click", forgetToken);
}
