// The console's shell: signs in, routes the hash (#/subjects, #/subject/{name}/{tab},
// #/files?prefix=…) to a view, and keeps the top bar and the keyboard shortcuts.
//
// A view is a function (main, params) → { update?(params), unmount() }: update() takes a new
// route of the same view and object (another tab of the same subject) without re-rendering
// what stays, so focus and live connections survive.

import { onCredentialRefused } from "./api.js";
import { describeError } from "./errors.js";
import { credential, forgetCredential, isToken, tokenClaims } from "./session.js";
import { setUpThemeToggle } from "./theme.js";
import { formatTime } from "./format.js";
import { signInView } from "./views/signin.js";
import { subjectsView } from "./views/subjects.js";
import { subjectView } from "./views/subject.js";
import { filesView } from "./views/files.js";

const main = document.getElementById("main");
const topbar = document.querySelector(".topbar");
const footer = document.querySelector(".shortcuts");
let current = null; // { key, instance }

/** The view, its identity (same key: update in place) and its parameters for a hash. */
function route(hash) {
  const [pathPart, queryPart = ""] = hash.replace(/^#\/?/, "").split("?");
  const query = new URLSearchParams(queryPart);
  const [page, name, tab] = pathPart.split("/").map(decodeURIComponent);
  if (page === "subject" && name) return { view: subjectView, key: `subject:${name}`, nav: "subjects", params: { subject: name, tab, query } };
  if (page === "files") return { view: filesView, key: "files", nav: "files", params: { query } };
  return { view: subjectsView, key: "subjects", nav: "subjects", params: { query } };
}

function show() {
  if (!credential()) return showSignIn();
  const next = route(location.hash);
  topbar.hidden = footer.hidden = false;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === next.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (current?.key === next.key && current.instance.update) return current.instance.update(next.params);
  current?.instance.unmount();
  main.replaceChildren();
  current = { key: next.key, instance: next.view(main, next.params) };
  main.querySelector("h1")?.focus({ preventScroll: true });
}

function showSignIn(message = "") {
  current?.instance.unmount();
  topbar.hidden = footer.hidden = true;
  main.replaceChildren();
  current = { key: "sign-in", instance: signInView(main, { message, onSignedIn: () => { current = null; showIdentity(); show(); } }) };
}

function showIdentity() {
  const secret = credential();
  const label = document.querySelector("[data-identity]");
  if (!secret) return;
  if (!isToken(secret)) {
    label.textContent = "API key";
    return;
  }
  const claims = tokenClaims(secret);
  label.textContent = `token ${claims?.sub ?? ""}`.trim();
  label.title = claims?.exp ? `expires ${formatTime(claims.exp * 1000)}` : "";
}

function signOut(message) {
  forgetCredential();
  showSignIn(message);
}

onCredentialRefused((error) => signOut(describeError("The server refused the credential of this session", error)));
document.querySelector("[data-sign-out]").addEventListener("click", () => signOut());
setUpThemeToggle(document.querySelector("[data-theme-toggle]"));
// The skip link would change the hash (and the route): it moves focus instead.
document.querySelector("[data-skip-link]").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

// "/" focuses the view's filter; "g" then "s" or "f" goes to subjects or files.
let pendingG = false;
document.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input, textarea, select, [contenteditable]");
  if (typing || event.ctrlKey || event.metaKey || event.altKey || !credential()) return;
  if (event.key === "/") {
    const filter = main.querySelector("[data-shortcut-filter]");
    if (filter) {
      event.preventDefault();
      filter.focus();
    }
  } else if (pendingG && (event.key === "s" || event.key === "f")) {
    location.hash = event.key === "s" ? "#/subjects" : "#/files";
  }
  pendingG = event.key === "g";
});

window.addEventListener("hashchange", show);
showIdentity();
show();
