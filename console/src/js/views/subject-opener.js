// Links to a subject's page, and the "open a subject by name" form (for subjects the list does
// not show yet, and for tokens that may not list subjects).

import { h } from "../dom.js";

/** docs/PROTOCOL.md § Concepts: 1–128 characters of A-Z a-z 0-9 . _ ~ - */
const SUBJECT_NAME = /^[A-Za-z0-9._~-]{1,128}$/;

export const subjectHref = (subject, tab = "") => `#/subject/${encodeURIComponent(subject)}${tab ? `/${tab}` : ""}`;

/** A link to the subject's page; a long name may wrap after each dot (orders.eu.…). */
export const subjectLink = (subject) =>
  h("a", { href: subjectHref(subject), class: "subject-link" }, subject.split(".").map((part, i) => (i ? [".", h("wbr"), part] : part)));

export function subjectOpener() {
  const input = h("input", { id: "open-subject", name: "subject", autocomplete: "off", spellcheck: "false", placeholder: "orders", "aria-describedby": "open-subject-error" });
  const error = h("p", { id: "open-subject-error", class: "field-error", role: "alert" });
  const form = h(
    "form",
    { class: "field opener" },
    h("label", { for: "open-subject" }, "Open a subject"),
    h("div", { class: "input-row" }, input, h("button", { type: "submit", class: "button" }, "Open")),
    error,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!SUBJECT_NAME.test(name)) {
      error.textContent = "A subject name is 1–128 characters of letters, digits and . _ ~ -";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    location.hash = subjectHref(name);
  });
  input.addEventListener("input", () => {
    error.textContent = "";
    input.removeAttribute("aria-invalid");
  });
  return form;
}
