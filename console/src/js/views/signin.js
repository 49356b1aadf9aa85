// Sign-in: the API key or an access token, checked with the server before it is kept.

import { ApiError, request } from "../api.js";
import { h } from "../dom.js";
import { describeError } from "../errors.js";
import { storeCredential } from "../session.js";

/** Asks the server whether it accepts the credential, with the cheapest authenticated request
 *  that changes nothing (listing one file: no subject is touched). A 403 means the credential
 *  is valid but may not list files (a narrow token), which is fine; a 401 means it is not. */
async function verify(secret) {
  try {
    await request("GET", "/v1/files", { query: { limit: 1 }, as: secret });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 403) throw error;
  }
}

function precheck(secret) {
  if (!secret) return "Enter the API key or an access token.";
  if (/\s/.test(secret)) return "The credential contains spaces or line breaks: paste it again without them.";
  return null;
}

export function signInView(main, { message, onSignedIn }) {
  const input = h("input", {
    id: "credential",
    name: "credential",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "credential-help",
  });
  const reveal = h("button", { type: "button", class: "button ghost", "aria-pressed": "false" }, "Show");
  reveal.addEventListener("click", () => {
    const shown = input.type === "text";
    input.type = shown ? "password" : "text";
    reveal.setAttribute("aria-pressed", String(!shown));
    reveal.textContent = shown ? "Show" : "Hide";
  });
  const error = h("p", { class: "form-error", role: "alert" }, message);
  const submit = h("button", { type: "submit", class: "button primary" }, "Sign in");
  const form = h(
    "form",
    { class: "card sign-in", novalidate: true },
    h("h1", { tabindex: "-1" }, "Sign in"),
    h("p", { class: "muted" }, "The console of this durable-stream server: its subjects, consumers, state documents and files."),
    h("label", { for: "credential" }, "API key or access token"),
    h("div", { class: "input-row" }, input, reveal),
    h(
      "p",
      { id: "credential-help", class: "hint" },
      "Kept in this tab's session storage only and sent in the Authorization header. The live tail is the exception: browsers cannot set WebSocket headers, so it puts the credential in the socket's URL (?apiKey= or ?token=).",
    ),
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const secret = input.value.trim();
    const problem = precheck(secret);
    if (problem) {
      error.textContent = problem;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Checking…";
    error.textContent = "";
    try {
      await verify(secret);
      storeCredential(secret);
      onSignedIn();
    } catch (failure) {
      error.textContent = describeError("Could not sign in", failure, {
        unauthorized: "Check the key (API_KEY: .dev.vars locally, a secret in production) or the token, and try again.",
        token_expired: "Ask the token's issuer for a fresh one.",
      });
      input.setAttribute("aria-invalid", "true");
      input.select();
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });
  main.append(h("div", { class: "sign-in-page" }, form));
  input.focus();
  return { unmount() {} };
}
