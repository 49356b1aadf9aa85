// Builds DOM nodes from plain values. Text is always set as text, never parsed as HTML, so
// nothing a server or a message holds can inject markup.

/**
 * h("button", { class: "primary", onclick: send, disabled: true }, "Send"): attributes by name
 * (true → present, false/null → absent), `on…` entries as event listeners; children are nodes,
 * strings or (nested) arrays of them, null and false skipped.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value == null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.flat(Infinity).filter((child) => child != null && child !== false));
  return element;
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with attributes (same rules as `h`, without listeners). */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value != null && value !== false) element.setAttribute(name, String(value));
  }
  element.append(...children);
  return element;
}

/** Replaces the children of `parent`. */
export function replaceChildren(parent, ...children) {
  parent.replaceChildren(...children.flat(Infinity).filter((child) => child != null && child !== false));
}

/** Sets a CSS custom property (the page's CSP allows no style attributes, but CSSOM is fine). */
export function setVar(element, name, value) {
  element.style.setProperty(name, String(value));
}

/** A message banner that is hidden while empty: { element, show(text), clear() }. Errors use
 *  role="alert" so screen readers announce them. */
export function banner(kind = "error") {
  const element = h("p", { class: `banner ${kind}`, role: kind === "error" ? "alert" : "status", hidden: true });
  return {
    element,
    show(text) {
      element.textContent = text;
      element.hidden = false;
    },
    clear() {
      element.textContent = "";
      element.hidden = true;
    },
  };
}
