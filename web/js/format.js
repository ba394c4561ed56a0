// How numbers, times and money read on the page. Pure functions (tested in the browser).

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** Milliseconds as a short duration: 0.42 ms, 12.3 ms, 1.24 s, 2 min 05 s, 1 h 02 min. */
export function duration(ms) {
  if (ms == null || Number.isNaN(ms)) return "–";
  const abs = Math.abs(ms);
  const sign = ms < 0 ? "−" : "";
  if (abs === 0) return "0 ms";
  if (abs < 0.01) return `${sign}${Math.max(1, Math.round(abs * 1000))} µs`;
  if (abs < 1) return `${sign}${abs.toFixed(2)} ms`;
  if (abs < 100) return `${sign}${abs.toFixed(1)} ms`;
  if (abs < 1000) return `${sign}${Math.round(abs)} ms`;
  if (abs < 60_000) return `${sign}${(abs / 1000).toFixed(abs < 10_000 ? 2 : 1)} s`;
  const seconds = Math.round(abs / 1000);
  if (seconds < 3600) return `${sign}${Math.floor(seconds / 60)} min ${pad(seconds % 60)} s`;
  return `${sign}${Math.floor(seconds / 3600)} h ${pad(Math.floor((seconds % 3600) / 60))} min`;
}

/** Epoch seconds as local "YYYY-MM-DD HH:MM:SS" (with ".mmm" when ms is set). */
export function datetime(epochSeconds, ms = false) {
  if (epochSeconds == null) return "–";
  const d = new Date(epochSeconds * 1000);
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return ms ? `${text}.${pad(d.getMilliseconds(), 3)}` : text;
}

/** Epoch seconds as the value of an <input type="datetime-local">, and back. */
export function toLocalInput(epochSeconds) {
  if (epochSeconds == null || epochSeconds === "") return "";
  return datetime(Number(epochSeconds)).replace(" ", "T").slice(0, 16);
}

export function fromLocalInput(value) {
  if (!value) return null;
  const time = new Date(value).getTime();
  return Number.isNaN(time) ? null : time / 1000;
}

const INT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** A whole number with thousands separators: 1,234,567. (One shared formatter: a
 *  toLocaleString call builds a new one each time, which a redraw of 40 rows notices.) */
export function int(n) {
  if (n == null) return "–";
  return INT.format(Math.round(n));
}

/** Tokens, compact for narrow columns: 950, 12.3k, 1.23M. */
export function tokens(n) {
  if (n == null) return "–";
  if (n < 10_000) return int(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 100_000 ? 1 : 0)}k`;
  return `${(n / 1_000_000).toFixed(2)}M`;
}

/** US dollars to three significant figures; null is "unpriced", never $0. */
export function cost(usd) {
  if (usd == null) return "unpriced";
  if (usd === 0) return "$0";
  const abs = Math.abs(usd);
  const sign = usd < 0 ? "−" : "";
  if (abs >= 100) return `${sign}$${abs.toFixed(0)}`;
  if (abs >= 1) return `${sign}$${abs.toFixed(2)}`;
  const digits = Math.min(12, 2 - Math.floor(Math.log10(abs)));  // three significant figures
  return `${sign}$${abs.toFixed(digits).replace(/\.?0+$/, "")}`;
}

/** A run's or a group's cost: the priced sum and how many steps have no price. */
export function runCost(usd, unpriced) {
  if (!unpriced) return usd == null ? "–" : cost(usd);
  if (usd == null) return `unpriced (${int(unpriced)})`;
  return `${cost(usd)} + ${int(unpriced)} unpriced`;
}

/** A share as a percentage: 12.5 %, 0.3 %, <0.1 %. */
export function percent(part, whole) {
  if (!whole || part == null) return "–";
  const value = (part / whole) * 100;
  if (value > 0 && value < 0.1) return "<0.1 %";
  return `${value.toFixed(value < 10 ? 1 : 0)} %`;
}

/** A signed delta for compare: "+12", "−0.3 ms", "=" for none. */
export function signed(value, formatter = int) {
  if (value == null) return "–";
  if (value === 0) return "=";
  const text = formatter(Math.abs(value));
  return (value > 0 ? "+" : "−") + text;
}

/** Whether B is better than A for a "lower is better" figure: 1 better, -1 worse, 0 same. */
export function verdict(delta) {
  if (delta == null || delta === 0) return 0;
  return delta < 0 ? 1 : -1;
}

/** A Python literal for a JSON value, for the replay snippet. */
export function python(value, indent = 0) {
  const space = " ".repeat(indent);
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "None";
  if (typeof value === "string") return JSON.stringify(value); // JSON escapes are Python's
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    const items = value.map((v) => `${space}    ${python(v, indent + 4)}`);
    return `[\n${items.join(",\n")},\n${space}]`;
  }
  const keys = Object.keys(value);
  if (!keys.length) return "{}";
  const items = keys.map((k) => `${space}    ${JSON.stringify(k)}: ${python(value[k], indent + 4)}`);
  return `{\n${items.join(",\n")},\n${space}}`;
}
