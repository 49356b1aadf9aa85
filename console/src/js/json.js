// A lossless reader of JSON text. Numbers keep the digits they were written with (the server
// stores data byte for byte, and JavaScript would round integers beyond 2^53), and the rules
// the server enforces on stored JSON (docs/PROTOCOL.md § Strict JSON: no key twice, finite
// numbers, no lone surrogates) are checked here, so the console refuses such input before
// sending it and says where the problem is.
//
// A parsed value is a node: {kind: "object", entries: [[key, node]]}, {kind: "array", items},
// {kind: "string", value}, {kind: "number", raw} or {kind: "literal", raw: "true"|"false"|"null"}.

export class JsonError extends Error {
  constructor(message, text, offset) {
    const before = text.slice(0, offset).split("\n");
    const line = before.length;
    const column = before[before.length - 1].length + 1;
    super(`${message} (line ${line}, column ${column})`);
    this.offset = offset;
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;
/** Characters a string holds as they are (up to a quote, an escape or a control character). */
const PLAIN_RUN = /[^"\\\u0000-\u001f]*/y;
const ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

/** Parses JSON text into nodes; throws a JsonError naming the line and column of a problem. */
export function parseJson(text) {
  let at = 0;
  const fail = (message, offset = at) => {
    throw new JsonError(message, text, offset);
  };
  const skipWhitespace = () => {
    WHITESPACE.lastIndex = at;
    WHITESPACE.test(text);
    at = WHITESPACE.lastIndex;
  };
  const describeNext = () => (at >= text.length ? "the end of the text" : `"${text[at]}"`);

  function value() {
    skipWhitespace();
    const c = text[at];
    if (c === "{") return object();
    if (c === "[") return array();
    if (c === '"') return { kind: "string", value: string() };
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    for (const raw of ["true", "false", "null"]) {
      if (text.startsWith(raw, at)) {
        at += raw.length;
        return { kind: "literal", raw };
      }
    }
    return fail(`expected a value, found ${describeNext()}`);
  }

  /** Reads `item()`s separated by commas up to `close` ("}" or "]"). */
  function sequence(close, what, item) {
    at++;
    skipWhitespace();
    if (text[at] === close) {
      at++;
      return;
    }
    for (;;) {
      item();
      skipWhitespace();
      if (text[at] === close) {
        at++;
        return;
      }
      if (text[at] !== ",") fail(`expected "," or "${close}" in the ${what}, found ${describeNext()}`);
      at++;
    }
  }

  function object() {
    const entries = [];
    const seen = new Set();
    sequence("}", "object", () => {
      skipWhitespace();
      if (text[at] !== '"') fail(`expected a key in quotes, found ${describeNext()}`);
      const keyAt = at;
      const key = string();
      if (seen.has(key)) fail(`the key "${key}" is given twice in one object`, keyAt);
      seen.add(key);
      skipWhitespace();
      if (text[at] !== ":") fail(`expected ":" after the key "${key}", found ${describeNext()}`);
      at++;
      entries.push([key, value()]);
    });
    return { kind: "object", entries };
  }

  function array() {
    const items = [];
    sequence("]", "array", () => items.push(value()));
    return { kind: "array", items };
  }

  function string() {
    const start = at;
    at++;
    let out = "";
    for (;;) {
      if (at >= text.length) fail("the string is not closed", start);
      const c = text[at];
      if (c === '"') {
        at++;
        return out;
      }
      if (c < " ") fail("a control character must be escaped inside a string");
      if (c !== "\\") {
        PLAIN_RUN.lastIndex = at;
        PLAIN_RUN.test(text);
        out += text.slice(at, PLAIN_RUN.lastIndex);
        at = PLAIN_RUN.lastIndex;
        continue;
      }
      const e = text[at + 1];
      if (e in ESCAPES) {
        out += ESCAPES[e];
        at += 2;
      } else if (e === "u") {
        out += unicodeEscape();
      } else {
        fail(`unknown escape "\\${e ?? ""}"`);
      }
    }
  }

  // \uXXXX, with a surrogate pair taken together: a lone surrogate is not a character.
  function unicodeEscape() {
    const unit = (offset) => {
      const hex = text.slice(offset + 2, offset + 6);
      if (text.slice(offset, offset + 2) !== "\\u" || !/^[0-9a-fA-F]{4}$/.test(hex)) return null;
      return parseInt(hex, 16);
    };
    const high = unit(at);
    if (high === null) fail("\\u must be followed by four hexadecimal digits");
    if (high >= 0xdc00 && high <= 0xdfff) fail("a lone low surrogate (\\udc00–\\udfff) is not a character");
    if (high < 0xd800 || high > 0xdbff) {
      at += 6;
      return String.fromCharCode(high);
    }
    const low = unit(at + 6);
    if (low === null || low < 0xdc00 || low > 0xdfff) fail("a high surrogate (\\ud800–\\udbff) must be followed by a low one");
    at += 12;
    return String.fromCharCode(high, low);
  }

  function number() {
    NUMBER.lastIndex = at;
    const match = NUMBER.exec(text);
    if (!match) fail(`expected a number, found ${describeNext()}`);
    const raw = match[0];
    if (!Number.isFinite(Number(raw))) fail(`the number ${raw} is beyond a 64-bit float`);
    at += raw.length;
    return { kind: "number", raw };
  }

  const root = value();
  skipWhitespace();
  if (at < text.length) fail(`unexpected ${describeNext()} after the value`);
  return root;
}

/** The node's value as plain JavaScript (numbers rounded as JSON.parse would). */
export function toValue(node) {
  switch (node.kind) {
    case "object":
      return Object.fromEntries(node.entries.map(([key, child]) => [key, toValue(child)]));
    case "array":
      return node.items.map(toValue);
    case "string":
      return node.value;
    default:
      return JSON.parse(node.raw);
  }
}

/** The member `key` of an object node, or undefined. */
export function member(node, key) {
  return node?.kind === "object" ? node.entries.find(([name]) => name === key)?.[1] : undefined;
}

/** Calls `emit(kind, text)` for each piece of the node pretty-printed with two-space indents:
 *  kind is "key", "string", "number", "boolean", "null", or "" for punctuation and whitespace. */
function emitPretty(node, emit, indent = "") {
  if (node.kind === "string") return emit("string", JSON.stringify(node.value));
  if (node.kind === "number") return emit("number", node.raw);
  if (node.kind === "literal") return emit(node.raw === "null" ? "null" : "boolean", node.raw);
  const isObject = node.kind === "object";
  const [open, close, children] = isObject ? ["{", "}", node.entries] : ["[", "]", node.items];
  if (!children.length) return emit("", open + close);
  const inner = `${indent}  `;
  emit("", `${open}\n`);
  children.forEach((child, i) => {
    emit("", inner);
    if (isObject) {
      emit("key", JSON.stringify(child[0]));
      emit("", ": ");
    }
    emitPretty(isObject ? child[1] : child, emit, inner);
    emit("", i < children.length - 1 ? ",\n" : "\n");
  });
  emit("", indent + close);
}

/** JSON text of the node, indented by two spaces (numbers exactly as written). */
export function formatJson(node) {
  let text = "";
  emitPretty(node, (_, piece) => {
    text += piece;
  });
  return text;
}

/** The node pretty-printed as DOM nodes, a span per token kind (text only: nothing in the data
 *  is ever interpreted as markup). */
export function renderJson(node) {
  const fragment = document.createDocumentFragment();
  emitPretty(node, (kind, piece) => {
    if (!kind) return fragment.append(piece);
    const span = document.createElement("span");
    span.className = `json-${kind}`;
    span.textContent = piece;
    fragment.append(span);
  });
  return fragment;
}
