// Dates and times in the reader's own locale and time zone.

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const dayFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  month: "long",
  day: "numeric",
});
const dayWithYearFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full" });

const DAY_MS = 24 * 60 * 60 * 1000;

export function timeLabel(date) {
  return timeFormat.format(date);
}

export function fullLabel(date) {
  return fullFormat.format(date);
}

/** "2026-11-26" in local time: sorts like the dates it names. */
export function dayKey(date) {
  const month = String(date.getMonth() + 1).padStart(2, "0");
  const day = String(date.getDate()).padStart(2, "0");
  return `${date.getFullYear()}-${month}-${day}`;
}

export function dayLabel(date, now = new Date()) {
  const key = dayKey(date);
  if (key === dayKey(now)) return "Today";
  if (key === dayKey(new Date(now.getTime() - DAY_MS))) return "Yesterday";
  if (date.getFullYear() === now.getFullYear()) return dayFormat.format(date);
  return dayWithYearFormat.format(date);
}
