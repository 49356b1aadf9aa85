// Turns a failure into a sentence that says what failed and what to do next.

const NEXT_STEP = {
  network: "Check that the server is running and reachable, then try again.",
  unauthorized: "Sign in again with a valid API key or token.",
  token_expired: "Sign in again with a fresh token.",
  forbidden: "Your token does not grant this here: use a token that does, or the API key.",
  not_found: "Check the name, or refresh: it may have been deleted.",
  bad_request: "Correct the input and try again.",
  too_large: "It is over the server's size limit: make it smaller and try again.",
  conflict: "It was changed meanwhile: refresh, then try again.",
  internal: "The server failed (its log has the details). Try again; if it keeps failing, check the server log.",
};

/** A problem with what the user entered, found before anything was sent: its message is the
 *  whole advice. */
export class InputProblem extends Error {}

/**
 * "Could not publish to orders: <the server's message> (400 bad_request). Correct the input…".
 * `nextSteps` overrides the advice for some codes where the caller knows better.
 */
export function describeError(what, error, nextSteps = {}) {
  if (error?.name === "AbortError") return `${what}: cancelled.`;
  if (error instanceof InputProblem) return `${what}: ${error.message}.`;
  if (error?.status === undefined) return `${what}: ${error?.message ?? error}. Reload the page and try again.`;
  const status = error.status ? ` (${error.status} ${error.code})` : "";
  const next =
    error.code === "rate_limited"
      ? `The server is rate limiting: try again in ${Math.ceil((error.retryAfterMs ?? 1000) / 1000)} s.`
      : (nextSteps[error.code] ?? NEXT_STEP[error.code] ?? "Try again.");
  return `${what}: ${error.message}${status}. ${next}`;
}
