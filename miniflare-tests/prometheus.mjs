// A strict parser of the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): it throws, naming the line, on
// anything a Prometheus server would refuse or that the format forbids — a malformed name,
// label or value, a bad escape, a TYPE after the family's first sample or given twice, a family
// split in two groups, the same series twice, a histogram whose buckets are not cumulative or
// whose `+Inf` bucket differs from its `_count`.

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(text, where) {
  if (/^[+-]?Inf$/.test(text)) return text.startsWith("-") ? -Infinity : Infinity;
  if (text === "NaN") return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new Error(`${where}: ${JSON.stringify(text)} is not a number`);
  return Number(text);
}

/** Reads `"…"` at `i` (a label value); returns [value, index after the closing quote]. */
function readQuoted(line, i, where) {
  if (line[i] !== '"') throw new Error(`${where}: expected '"' at column ${i}`);
  let value = "";
  for (i++; i < line.length; i++) {
    const c = line[i];
    if (c === '"') return [value, i + 1];
    if (c === "\\") {
      const next = line[++i];
      if (next === "\\") value += "\\";
      else if (next === '"') value += '"';
      else if (next === "n") value += "\n";
      else throw new Error(`${where}: invalid escape \\${next} in a label value`);
    } else value += c;
  }
  throw new Error(`${where}: unterminated label value`);
}

/** The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` belong to it. */
function familyOf(name, types) {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : null;
    if (base && (types.get(base) === "histogram" || types.get(base) === "summary")) return base;
  }
  return name;
}

function parseSample(line, where) {
  const name = METRIC_NAME.exec(line)?.[0];
  if (!name) throw new Error(`${where}: no metric name`);
  let i = name.length;
  const labels = {};
  if (line[i] === "{") {
    i++;
    while (line[i] !== "}") {
      const label = LABEL_NAME.exec(line.slice(i))?.[0];
      if (!label) throw new Error(`${where}: bad label name at column ${i}`);
      if (label in labels) throw new Error(`${where}: label ${label} given twice`);
      i += label.length;
      if (line[i] !== "=") throw new Error(`${where}: expected '=' after label ${label}`);
      [labels[label], i] = readQuoted(line, i + 1, where);
      if (line[i] === ",") i++;
      else if (line[i] !== "}") throw new Error(`${where}: expected ',' or '}' at column ${i}`);
    }
    i++;
  }
  if (line[i] !== " ") throw new Error(`${where}: expected a space before the value`);
  const rest = line.slice(i + 1).split(" ");
  if (rest.length > 2 || rest.some((part) => part === "")) throw new Error(`${where}: expected a value and an optional timestamp`);
  if (rest[1] !== undefined && !/^-?\d+$/.test(rest[1])) throw new Error(`${where}: bad timestamp ${rest[1]}`);
  return { name, labels, value: parseValue(rest[0], where) };
}

function checkHistogram(name, samples) {
  const series = new Map();
  for (const sample of samples) {
    const { le, ...others } = sample.labels;
    const key = JSON.stringify(others);
    const entry = series.get(key) ?? { buckets: [], count: undefined, sum: undefined };
    series.set(key, entry);
    if (sample.name === `${name}_bucket`) {
      if (le === undefined) throw new Error(`histogram ${name}: a bucket without le`);
      entry.buckets.push([parseValue(le, `${name} le`), sample.value]);
    } else if (sample.name === `${name}_count`) entry.count = sample.value;
    else if (sample.name === `${name}_sum`) entry.sum = sample.value;
    else throw new Error(`histogram ${name}: unexpected sample ${sample.name}`);
  }
  for (const [key, { buckets, count, sum }] of series) {
    if (count === undefined || sum === undefined) throw new Error(`histogram ${name}${key}: missing _count or _sum`);
    const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
    if (sorted.at(-1)?.[0] !== Infinity) throw new Error(`histogram ${name}${key}: no +Inf bucket`);
    sorted.forEach(([le, value], k) => {
      if (k > 0 && value < sorted[k - 1][1]) throw new Error(`histogram ${name}${key}: bucket le=${le} is below the one before (not cumulative)`);
    });
    if (sorted.at(-1)[1] !== count) throw new Error(`histogram ${name}${key}: +Inf bucket ${sorted.at(-1)[1]} differs from _count ${count}`);
  }
}

/**
 * Parses an exposition. Returns a Map of family name → { type, help, samples: [{ name, labels, value }] }
 * in the order the families appear.
 */
export function parsePrometheus(text) {
  if (text !== "" && !text.endsWith("\n")) throw new Error("the exposition must end with a line feed");
  const families = new Map();
  const types = new Map();
  const seenSeries = new Set();
  const finished = new Set();
  let current = null;
  const family = (name) => {
    if (!families.has(name)) families.set(name, { type: "untyped", help: undefined, samples: [] });
    return families.get(name);
  };
  const enter = (name, where) => {
    if (current === name) return;
    if (finished.has(name)) throw new Error(`${where}: family ${name} is split into two groups`);
    if (current !== null) finished.add(current);
    current = name;
  };
  text.split("\n").forEach((line, index) => {
    const where = `line ${index + 1} (${JSON.stringify(line.slice(0, 80))})`;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const match = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (!match) return; // a plain comment
      const [, keyword, name, rest = ""] = match;
      if (!METRIC_NAME.test(name) || METRIC_NAME.exec(name)[0] !== name) throw new Error(`${where}: bad metric name ${name}`);
      enter(name, where);
      const entry = family(name);
      if (keyword === "HELP") {
        if (entry.help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ""))) throw new Error(`${where}: invalid escape in HELP`);
        entry.help = rest.replace(/\\(\\|n)/g, (_, c) => (c === "n" ? "\n" : "\\"));
      } else {
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
        if (types.has(name)) throw new Error(`${where}: second TYPE for ${name}`);
        if (entry.samples.length > 0) throw new Error(`${where}: TYPE after the first sample of ${name}`);
        types.set(name, rest);
        entry.type = rest;
      }
      return;
    }
    const sample = parseSample(line, where);
    const name = familyOf(sample.name, types);
    enter(name, where);
    const series = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seenSeries.has(series)) throw new Error(`${where}: series given twice`);
    seenSeries.add(series);
    const entry = family(name);
    if (entry.type !== "histogram" && entry.type !== "summary" && sample.name !== name) throw new Error(`${where}: sample outside its family`);
    if (entry.type === "counter" && !(sample.value >= 0)) throw new Error(`${where}: a counter must not be negative`);
    entry.samples.push(sample);
  });
  for (const [name, entry] of families) {
    if (entry.type === "histogram") checkHistogram(name, entry.samples);
  }
  return families;
}

/** The value of the one sample of `name` whose labels include `labels`; undefined if none. */
export function sampleValue(families, name, labels = {}) {
  for (const entry of families.values()) {
    for (const sample of entry.samples) {
      if (sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) return sample.value;
    }
  }
  return undefined;
}
