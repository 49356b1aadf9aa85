// The credential the console signs in with (the API key or an access token): kept in this tab's
// sessionStorage only, so it is gone when the tab closes and never reaches a URL, a cookie or
// another tab. The theme choice is not a secret and persists in localStorage.

const CREDENTIAL_KEY = "dstream-console.credential";

export function credential() {
  return sessionStorage.getItem(CREDENTIAL_KEY);
}

export function storeCredential(value) {
  sessionStorage.setItem(CREDENTIAL_KEY, value);
}

export function forgetCredential() {
  sessionStorage.removeItem(CREDENTIAL_KEY);
}

/** Whether the credential is an access token: the server's rule (a compact JWT, three
 *  base64url parts, the first starting "eyJ"); anything else is an API key. */
export function isToken(value) {
  return /^eyJ[\w-]*\.[\w-]*\.[\w-]*$/.test(value);
}

/** The token's claims, read without verifying (the server verifies; this only labels the
 *  session), or null when they cannot be read. */
export function tokenClaims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}
