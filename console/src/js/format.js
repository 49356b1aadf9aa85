// Numbers, sizes and times as people read them.

const integer = new Intl.NumberFormat();
const compact = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export const formatCount = (n) => (n == null ? "—" : integer.format(n));

export function formatBytes(bytes) {
  if (bytes == null) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit ? compact.format(value) : value} ${units[unit]}`;
}

export function formatRate(perSecond) {
  if (perSecond == null) return "—";
  return `${perSecond >= 10 ? integer.format(Math.round(perSecond)) : compact.format(perSecond)}/s`;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "narrow" });

/** "12 s ago", "3 min ago", "now"; "—" for no time. */
export function formatAgo(ms, now = Date.now()) {
  if (!ms) return "—";
  const seconds = Math.round((ms - now) / 1000);
  if (Math.abs(seconds) < 2) return "now";
  if (Math.abs(seconds) < 60) return relative.format(seconds, "second");
  if (Math.abs(seconds) < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (Math.abs(seconds) < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  return relative.format(Math.round(seconds / 86400), "day");
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** Local date and time, for tooltips and <time> elements. */
export const formatTime = (ms) => (ms ? dateTime.format(new Date(ms)) : "—");
