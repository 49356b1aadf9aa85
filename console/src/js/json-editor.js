// A textarea for JSON that checks it as it is typed (the server's strict rules, see json.js),
// formats it on request, and submits its form with Ctrl+Enter.

import { h } from "./dom.js";
import { formatJson, parseJson } from "./json.js";

/**
 * { element, textarea, read() → node | null, set(text), focus() }. read() shows the problem
 * next to the field and returns null when the text is not valid JSON; `check(node)` adds a
 * rule of the caller's (returns a problem sentence or null).
 */
export function jsonEditor({ id, label, text = "", check = () => null }) {
  const textarea = h("textarea", { id, spellcheck: "false", autocomplete: "off", class: "code", "aria-describedby": `${id}-error` });
  // As tall as the text, within bounds (the user can still resize it).
  const fit = () => (textarea.rows = Math.min(24, Math.max(6, textarea.value.split("\n").length + 1)));
  textarea.value = text;
  fit();
  const error = h("p", { id: `${id}-error`, class: "field-error", "aria-live": "polite" });
  const format = h("button", { type: "button", class: "button small ghost" }, "Format");

  const problemOf = () => {
    try {
      const node = parseJson(textarea.value);
      return { node, problem: check(node) };
    } catch (failure) {
      // A JsonError names the place; anything else (too deeply nested for this browser) says what.
      const what = failure.offset === undefined ? `Cannot read this JSON (${failure.message})` : `Not valid JSON: ${failure.message}`;
      return { node: null, problem: `${what}. Fix it before sending.` };
    }
  };
  const show = (problem) => {
    error.textContent = problem ?? "";
    if (problem) textarea.setAttribute("aria-invalid", "true");
    else textarea.removeAttribute("aria-invalid");
  };

  let typing;
  textarea.addEventListener("input", () => {
    fit();
    clearTimeout(typing);
    typing = setTimeout(() => show(textarea.value.trim() ? problemOf().problem : null), 300);
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      textarea.form?.requestSubmit();
    }
  });
  format.addEventListener("click", () => {
    const { node, problem } = problemOf();
    show(problem);
    if (node) textarea.value = formatJson(node);
    fit();
  });

  return {
    element: h("div", { class: "field json-editor" }, h("div", { class: "field-head" }, h("label", { for: id }, label), format), textarea, error),
    textarea,
    read() {
      clearTimeout(typing);
      const { node, problem } = problemOf();
      show(problem);
      return problem ? null : node;
    },
    set(value) {
      textarea.value = value;
      fit();
      show(null);
    },
    focus: () => textarea.focus(),
  };
}
