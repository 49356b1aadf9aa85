// Access tokens for the tests: HS256 and EdDSA JWTs made with node:crypto (independently of the
// server's Rust code), and a server configured to accept them.

import { createHmac, generateKeyPairSync, sign } from "node:crypto";
import { startServer } from "./server.mjs";

export const TOKEN_SECRET = "token-secret-for-tests";
export const PREVIOUS_TOKEN_SECRET = "the-secret-before-rotation";
export const PREVIOUS_API_KEY = "the-key-before-rotation";

const b64url = (data) => Buffer.from(typeof data === "string" ? data : JSON.stringify(data)).toString("base64url");

/** An Ed25519 key pair: { kid, privateKey, x } (x: the public key as JWK `x`). */
export function edKey(kid) {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { kid, privateKey, x: publicKey.export({ format: "jwk" }).x };
}

export const CURRENT_KEY = edKey("k-2026");
export const OLD_KEY = edKey("k-2025");
/** Listed nowhere on the server. */
export const STRANGER_KEY = edKey("k-unknown");

const nowS = () => Math.floor(Date.now() / 1000);

/** Claims with defaults: sub "tester", issued now, valid for an hour. */
export function claims({ sub = "tester", ttl = 3600, ...rest } = {}) {
  return { sub, iat: nowS(), exp: nowS() + ttl, ...rest };
}

export function hs256(payload, secret = TOKEN_SECRET, header = { alg: "HS256", typ: "JWT" }) {
  const signing = `${b64url(header)}.${b64url(payload)}`;
  return `${signing}.${createHmac("sha256", secret).update(signing).digest("base64url")}`;
}

export function eddsa(payload, key = CURRENT_KEY, kid = key.kid) {
  const header = kid == null ? { alg: "EdDSA", typ: "JWT" } : { alg: "EdDSA", typ: "JWT", kid };
  const signing = `${b64url(header)}.${b64url(payload)}`;
  return `${signing}.${sign(null, Buffer.from(signing), key.privateKey).toString("base64url")}`;
}

/** An unsigned token (`alg: none`). */
export function unsigned(payload) {
  return `${b64url({ alg: "none", typ: "JWT" })}.${b64url(payload)}.`;
}

/** `allow` entries granting `actions` on subject `patterns`. */
export const allowSubjects = (patterns, actions) => ({ subjects: patterns, actions });

/** The Worker with both token schemes and a key rotation in progress. */
export function startTokenServer({ vars = {}, ...options } = {}) {
  return startServer({
    ...options,
    secrets: { TOKEN_SECRET, TOKEN_SECRET_PREVIOUS: PREVIOUS_TOKEN_SECRET, API_KEY_PREVIOUS: PREVIOUS_API_KEY },
    vars: {
      TOKEN_PUBLIC_KEYS: JSON.stringify([{ kid: CURRENT_KEY.kid, x: CURRENT_KEY.x }, { kid: OLD_KEY.kid, x: OLD_KEY.x, kty: "OKP", crv: "Ed25519" }]),
      ...vars,
    },
  });
}
