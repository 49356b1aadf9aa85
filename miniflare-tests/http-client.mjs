// HTTP requests to a test server with the test key: the answer's status, headers, text and,
// when the text is JSON, its parsed value.

import { TEST_KEY } from "./server.mjs";

export const AUTH = { authorization: `Bearer ${TEST_KEY}` };

/** `auth`: the credential headers (default: the test key). */
export async function httpCall(server, method, path, { body, headers = {}, auth = AUTH } = {}) {
  const res = await fetch(`${server.url}${path}`, { method, headers: { ...auth, ...headers }, body });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, text, json };
}
