// The banner (a lasting problem, with an optional action) and toasts (what an action did).
import { $, el } from "./dom.js";

const MAX_TOASTS = 5;

export function setBanner(message, action) {
  const banner = $("banner");
  if (!message) {
    banner.hidden = true;
    banner.replaceChildren();
    return;
  }
  const children = [el("span", { className: "banner-text" }, message)];
  if (action) {
    children.push(
      " ",
      el("button", {
        type: "button",
        className: "btn btn-ghost banner-action",
        textContent: action.label,
        onclick: action.run,
      }),
    );
  }
  banner.replaceChildren(...children);
  banner.hidden = false;
}

/** A message that goes away by itself, or on a click; errors stay longer. */
export function toast(kind, message) {
  const box = $("toasts");
  const node = el(
    "div",
    {
      className: `toast toast-${kind}`,
      role: kind === "error" ? "alert" : "status",
      testid: "toast",
      dataset: { kind },
      title: "Click to dismiss",
    },
    el("span", { className: "toast-icon", ariaHidden: "true" }, kind === "error" ? "!" : "✓"),
    el("span", { className: "toast-message", testid: "toast-message" }, message),
  );
  const dismiss = () => {
    if (!node.isConnected) return;
    node.classList.add("leaving");
    setTimeout(() => node.remove(), 200); // after the leaving animation
  };
  node.addEventListener("click", dismiss);
  box.append(node);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
  setTimeout(dismiss, kind === "error" ? 7000 : 4000);
}
