// The caller's role (GET api/me: read, operate or admin). The page marks each control
// with the role it needs (data-needs="operate" or "admin"); style.css hides those the
// role may not use, and hides them all until the role is known.
import { api } from "./api.js";

const RANK = { read: 1, operate: 2, admin: 3 };

let role = null;

/** Whether the caller's role is `needed` or above; false while it is not known. */
export function may(needed) {
  return role !== null && RANK[role] >= RANK[needed];
}

export async function loadRole() {
  const { data } = await api("GET", "api/me");
  role = RANK[data.role] ? data.role : "read";
  if (document.body.dataset.role !== role) document.body.dataset.role = role;
}

/** The token changed: hide the controls again until its role is known. */
export function forgetRole() {
  role = null;
  delete document.body.dataset.role;
}
