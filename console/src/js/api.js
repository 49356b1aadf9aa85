// The public HTTP API (docs/PROTOCOL.md) as the console uses it: every request carries the
// signed-in credential in the Authorization header; every failure becomes an ApiError with the
// server's code and message.

import { credential, isToken } from "./session.js";

export class ApiError extends Error {
  /** status 0 with code "network" when the server could not be reached at all. */
  constructor(status, code, message, retryAfterMs = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

const listeners = new Set();
/** `listener(error)` runs when the server refuses the credential (401) on any request. */
export function onCredentialRefused(listener) {
  listeners.add(listener);
}

/** `/v1/stream/orders` etc.: each segment percent-encoded. */
function path(...segments) {
  return `/${segments.map(encodeURIComponent).join("/")}`;
}

function withQuery(target, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value != null && value !== "") params.set(name, String(value));
  }
  const search = params.toString();
  return search ? `${target}?${search}` : target;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {}
  const { code = "http_error", message = `${response.status} ${response.statusText}`, retryAfterMs = null } = body?.error ?? {};
  return new ApiError(response.status, code, message, retryAfterMs);
}

/** Tells the listeners when the server refuses the session's own credential. */
function refused(error, sessionCredential = true) {
  if (error.status === 401 && sessionCredential) listeners.forEach((listener) => listener(error));
  return error;
}

/**
 * fetch() with the credential; resolves to the Response when it is 2xx, else throws ApiError.
 * `as` checks another credential than the session's (signing in checks one before keeping it).
 */
export async function request(method, target, { query, body, headers = {}, signal, as } = {}) {
  const secret = as ?? credential();
  let response;
  try {
    response = await fetch(withQuery(target, query), {
      method,
      body,
      signal,
      headers: { ...headers, authorization: `Bearer ${secret}` },
    });
  } catch (cause) {
    if (cause.name === "AbortError") throw cause;
    throw new ApiError(0, "network", `could not reach the server at ${location.origin}`);
  }
  if (!response.ok) throw refused(await errorFrom(response), as === undefined);
  return response;
}

async function getJson(target, options) {
  return (await request("GET", target, options)).json();
}

const JSON_TYPE = { "content-type": "application/json" };

// Subjects and their directory.

export const listSubjects = ({ prefix, limit, cursor }, options) => getJson("/v1/subjects", { ...options, query: { prefix, limit, cursor } });
export const subjectInfo = (subject) => getJson(path("v1", "stream", subject));

/** A page of messages as raw text: data is kept exactly as stored (see json.js). */
export async function readMessages(subject, { from, limit }) {
  return (await request("GET", path("v1", "stream", subject, "messages"), { query: { from, limit } })).text();
}

/** Publishes JSON text as written (a JSON array with `batch`, one message per item). */
export async function publish(subject, text, { msgId, batch = false } = {}) {
  const headers = { ...JSON_TYPE, ...(msgId ? { "idempotency-key": msgId } : {}) };
  const query = batch ? { batch: 1 } : {};
  return (await request("POST", path("v1", "stream", subject), { query, body: text, headers })).json();
}

// Durable consumers.

export const listConsumers = (subject) => getJson(path("v1", "stream", subject, "consumers"));

export async function moveConsumer(subject, name, acked) {
  const body = JSON.stringify({ acked });
  return (await request("PUT", path("v1", "stream", subject, "consumers", name), { body, headers: JSON_TYPE })).json();
}

export async function deleteConsumer(subject, name) {
  await request("DELETE", path("v1", "stream", subject, "consumers", name));
}

// The state document (compare-and-set on its version, carried in the ETag).

const versionOf = (response) => Number(response.headers.get("etag")?.replace(/"/g, "") ?? 0);

/** { text, version }: the document as stored. */
export async function getState(subject) {
  const response = await request("GET", path("v1", "stream", subject, "state"));
  return { text: await response.text(), version: versionOf(response) };
}

/** Writes the document only if it is still at `version` (else ApiError 412 "conflict"). */
export async function putState(subject, text, version) {
  const headers = { ...JSON_TYPE, "if-match": `"${version}"` };
  return versionOf(await request("PUT", path("v1", "stream", subject, "state"), { body: text, headers }));
}

// Files (R2).

/** `a/b c.txt` → `/v1/files/a/b%20c.txt` (each segment encoded, the slashes kept). */
const filePath = (key) => `/v1/files/${key.split("/").map(encodeURIComponent).join("/")}`;

export const listFiles = ({ prefix, cursor }) => getJson("/v1/files", { query: { prefix, cursor, delimiter: "/" } });

export async function deleteFile(key) {
  await request("DELETE", filePath(key));
}

/**
 * Uploads with XMLHttpRequest, the one browser API that reports upload progress:
 * `onProgress(sentBytes, totalBytes)`. Resolves to the server's {key, size, etag}; `signal`
 * aborts it.
 */
export function uploadFile(key, file, { onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", filePath(key));
    xhr.setRequestHeader("authorization", `Bearer ${credential()}`);
    xhr.setRequestHeader("content-type", file.type || "application/octet-stream");
    xhr.upload.onprogress = (event) => onProgress?.(event.loaded, event.total);
    xhr.onload = async () => {
      const response = new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText });
      if (response.ok) resolve(await response.json());
      else reject(refused(await errorFrom(response)));
    };
    xhr.onerror = () => reject(new ApiError(0, "network", `could not reach the server at ${location.origin}`));
    xhr.onabort = () => reject(new DOMException("upload cancelled", "AbortError"));
    signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(file);
  });
}

/** Downloads into a Blob, reporting `onProgress(receivedBytes, totalBytes | null)`. */
export async function downloadFile(key, { onProgress, signal } = {}) {
  const response = await request("GET", filePath(key), { signal });
  const total = Number(response.headers.get("content-length")) || null;
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    onProgress?.(received, total);
  }
  return new Blob(chunks, { type: response.headers.get("content-type") ?? "application/octet-stream" });
}

// The live tail.

/** The WebSocket URL of a subject. Browsers cannot set headers on a WebSocket, so this is the
 *  one place the credential goes into a URL (`?token=` or `?apiKey=`, docs/PROTOCOL.md). */
export function streamSocketUrl(subject) {
  const url = new URL(path("v1", "stream", subject), location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const secret = credential();
  url.searchParams.set(isToken(secret) ? "token" : "apiKey", secret);
  return url.href;
}
