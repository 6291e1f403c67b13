// Reading form fields into API values: whole numbers, text, lists of ids, and local
// date-times as RFC 3339. Each reader throws a FieldError naming its input.
import { $ } from "./dom.js";

export class FieldError extends Error {
  constructor(input, message) {
    super(message);
    this.input = input;
  }
}

/** A whole number from an input, or undefined when it is empty. */
export function optionalInteger(id, label) {
  const input = $(id);
  const raw = input.value.trim();
  if (!raw) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value)) throw new FieldError(input, `${label} must be a whole number.`);
  return value;
}

/** A text input's value without surrounding spaces, or undefined when it is blank. */
export function optionalText(id) {
  const value = $(id).value.trim();
  return value || undefined;
}

/** Job ids written "3, 7 12" (commas or spaces); [] when empty. */
export function idList(id, label) {
  const input = $(id);
  const parts = input.value.split(/[\s,]+/).filter(Boolean);
  const ids = parts.map((part) => Number(part.replace(/^#/, "")));
  const bad = parts.find((_, i) => !Number.isInteger(ids[i]) || ids[i] < 1);
  if (bad !== undefined) throw new FieldError(input, `${label}: “${bad}” is not a job id.`);
  return [...new Set(ids)];
}

/** A datetime-local input's value as RFC 3339 with this browser's offset at that time,
 *  or undefined when it is empty. */
export function localDateTime(id, label) {
  const input = $(id);
  const raw = input.value;
  if (!raw) return undefined;
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(raw);
  if (!match) throw new FieldError(input, `${label} is not a date and time.`);
  const [year, month, day, hour, minute, second = "0"] = match.slice(1).map(Number);
  // Built from the local fields, a time skipped by a daylight-saving change moves to
  // one that exists, and its offset is the one in force then, not today's.
  return rfc3339(new Date(year, month - 1, day, hour, minute, second));
}

/** A Date as local wall time with its UTC offset: 2026-11-29T21:15:00+01:00. */
export function rfc3339(date) {
  const pad = (n) => String(Math.abs(n)).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const sign = offset < 0 ? "-" : "+";
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`
  );
}

/** The input an API error is about, when its message starts with a field's name
 *  ("depends_on: job 7 does not exist", "run_at: ..."); `inputs` maps field -> id. */
export function inputForError(message, inputs) {
  const match = /^([a-z_]+)\b/.exec(message);
  const id = match && inputs[match[1]];
  return id ? $(id) : null;
}
