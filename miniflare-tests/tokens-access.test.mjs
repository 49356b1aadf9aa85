// The permission matrix of access tokens on real workerd: for each action, a token that allows
// it, one for another subject, one whose deny entry covers it, and tokens that are expired, not
// yet valid, badly signed, of the wrong algorithm (`none` included), of an unknown key or
// revoked — on WebSocket ops, the HTTP API, the Durable Streams mount and files, with the exact
// status and error code. Also: tokens on the upgrade, rotation of keys, minting.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { TEST_KEY } from "./server.mjs";
import { httpCall } from "./http-client.mjs";
import { WsClient, rawUpgrade, uniqueSubject } from "./ws-client.mjs";
import {
  CURRENT_KEY, OLD_KEY, PREVIOUS_API_KEY, PREVIOUS_TOKEN_SECRET, STRANGER_KEY,
  allowSubjects, claims, eddsa, hs256, startTokenServer, unsigned,
} from "./tokens.mjs";

let server;
before(async () => {
  server = await startTokenServer();
});
after(async () => {
  await server?.stop();
});

const master = { authorization: `Bearer ${TEST_KEY}` };
/** A fresh subject whose first tokens are `prefix` (e.g. "m.secret" → "m.secret.t-…"). */
const under = (prefix) => `${prefix}.${uniqueSubject()}`;

/** A request with `token` as its only credential (or the `headers` given). */
function call(method, path, { token, headers = {}, body, query = "" } = {}) {
  const auth = token ? { authorization: `Bearer ${token}` } : {};
  return httpCall(server, method, `${path}${query}`, { body, headers, auth });
}

/** Asserts an error answer: status, code, no internals, and never the token itself. */
function assertRefused(res, status, code, token, what) {
  assert.equal(res.status, status, `${what}: ${res.text}`);
  assert.equal(res.json?.error?.code, code, `${what}: ${res.text}`);
  if (token) assert.ok(!res.text.includes(token.split(".")[2] || token), `${what}: the answer echoes the token`);
}

/** Publishes with the API key so that a subject exists (as a JSON stream for /ds too). */
async function seed(subject) {
  const res = await call("POST", `/v1/stream/${subject}`, { headers: master, body: '{"seed":true}' });
  assert.equal(res.status, 201, res.text);
}

// One probe per surface and action: how to exercise the action on `subject` and what success is.
const HTTP_PROBES = {
  pub: [(s) => ({ method: "POST", path: `/v1/stream/${s}`, body: '{"n":1}', ok: 201 })],
  sub: [
    (s) => ({ method: "GET", path: `/v1/stream/${s}/messages`, query: "?from=1", ok: 200 }),
    (s) => ({ method: "GET", path: `/v1/stream/${s}`, ok: 200 }),
  ],
  state: [
    (s) => ({ method: "GET", path: `/v1/stream/${s}/state`, ok: 200 }),
    (s) => ({ method: "PUT", path: `/v1/stream/${s}/state`, body: '{"v":1}', ok: 200 }),
  ],
  admin: [
    (s) => ({ method: "DELETE", path: `/v1/stream/${s}/messages`, query: "?upto=0", ok: 200 }),
    (s) => ({ method: "DELETE", path: `/v1/stream/${s}`, ok: 200 }),
  ],
};
const DS_PROBES = {
  pub: [(s) => ({ method: "POST", path: `/ds/v1/stream/${s}`, body: "[1]", headers: { "content-type": "application/json" }, ok: 204 })],
  sub: [
    (s) => ({ method: "GET", path: `/ds/v1/stream/${s}`, query: "?offset=-1", ok: 200 }),
    (s) => ({ method: "HEAD", path: `/ds/v1/stream/${s}`, ok: 200 }),
  ],
  admin: [
    (s) => ({ method: "POST", path: `/ds/v1/stream/${s}`, headers: { "stream-closed": "true" }, ok: 204 }),
    (s) => ({ method: "DELETE", path: `/ds/v1/stream/${s}`, ok: 204 }),
  ],
};
const WS_PROBES = {
  pub: { op: "pub", data: { n: 1 } },
  sub: { op: "sub", from: "first" },
  state: { op: "state.get" },
  admin: { op: "trim", upto: 0 },
};
const ACTIONS = ["pub", "sub", "state", "admin"];
/** An action the token also holds so that a WebSocket opens (every action but `action`). */
const other = (action) => (action === "sub" ? "state" : "sub");

async function runProbe(probe, token) {
  return call(probe.method, probe.path, { token, headers: probe.headers, body: probe.body, query: probe.query });
}

describe("HTTP and /ds: each action allowed, on another subject, denied", () => {
  for (const [surface, probes] of [["HTTP", HTTP_PROBES], ["/ds", DS_PROBES]]) {
    for (const [action, makes] of Object.entries(probes)) {
      test(`${surface} ${action}`, async () => {
        const token = hs256(claims({
          allow: [allowSubjects(["m.>"], [action])],
          deny: [{ subjects: ["m.secret.>"], actions: [action] }],
        }));
        for (const make of makes) {
          const allowed = under("m.ok");
          await seed(allowed);
          const probe = make(allowed);
          const res = await runProbe(probe, token);
          assert.equal(res.status, probe.ok, `${probe.method} ${probe.path} allowed: ${res.text}`);

          for (const [subject, why] of [[under("n"), "another subject"], [under("m.secret"), "a deny entry"]]) {
            await seed(subject);
            const refused = await runProbe(make(subject), token);
            if (probe.method === "HEAD") {
              assert.equal(refused.status, 403, `HEAD on ${why}`);
              continue;
            }
            assertRefused(refused, 403, "forbidden", token, `${probe.method} ${probe.path} on ${why}`);
            assert.match(refused.json.error.message, new RegExp(`does not grant ${action}|grants nothing`));
          }
        }
        // A token for the other actions only is refused too.
        const others = hs256(claims({ allow: [allowSubjects(["m.>"], ACTIONS.filter((a) => a !== action))] }));
        const subject = under("m.x");
        await seed(subject);
        const probe = makes[0](subject);
        if (probe.method !== "HEAD") assertRefused(await runProbe(probe, others), 403, "forbidden", others, `${action} without ${action}`);
      });
    }
  }

  test("a /ds fork needs sub on its source", async () => {
    const source = uniqueSubject("src");
    await seed(source);
    const fork = under("m.fork");
    const token = hs256(claims({ allow: [allowSubjects(["m.>"], ["admin", "sub"])] }));
    const refused = await call("PUT", `/ds/v1/stream/${fork}`, { token, headers: { "stream-forked-from": source, "content-type": "application/json" } });
    assertRefused(refused, 403, "forbidden", token, "fork of an unreadable source");
    const reader = hs256(claims({ allow: [allowSubjects(["m.>"], ["admin"]), allowSubjects([source], ["sub"])] }));
    const created = await call("PUT", `/ds/v1/stream/${fork}`, { token: reader, headers: { "stream-forked-from": source, "content-type": "application/json" } });
    assert.equal(created.status, 201, created.text);
  });
});

describe("WebSocket: each op allowed or refused with forbidden, the connection open", () => {
  for (const action of ACTIONS) {
    test(`ws ${action}`, async () => {
      const subject = under("m.ws");
      await seed(subject);
      const allowed = hs256(claims({ allow: [allowSubjects(["m.>"], [action])] }));
      const yes = await WsClient.connect(`${server.wsUrl}/v1/stream/${subject}?token=${allowed}`, { label: `${action} allowed` });
      const ok = await yes.request(WS_PROBES[action]);
      assert.equal(ok.op, "ok", JSON.stringify(ok));
      yes.close();

      const without = hs256(claims({ allow: [allowSubjects(["m.>"], [other(action)])] }));
      const no = await WsClient.connect(`${server.wsUrl}/v1/stream/${subject}?token=${without}`, { label: `${action} refused` });
      const refused = await no.request(WS_PROBES[action]);
      assert.equal(refused.op, "err");
      assert.equal(refused.code, "forbidden");
      assert.match(refused.message, new RegExp(`does not grant ${action} on subject`));
      // The connection stays usable for what the token does allow.
      const still = await no.request(WS_PROBES[other(action)]);
      assert.equal(still.op, "ok", JSON.stringify(still));
      assert.equal(no.closed, null);
      no.close();

      // Denied by a deny entry: the same refusal.
      const denied = hs256(claims({
        allow: [allowSubjects(["m.>"], [action, other(action)])],
        deny: [{ subjects: [subject], actions: [action] }],
      }));
      const deny = await WsClient.connect(`${server.wsUrl}/v1/stream/${subject}?token=${denied}`, { label: `${action} denied` });
      assert.equal((await deny.request(WS_PROBES[action])).code, "forbidden");
      deny.close();
    });
  }

  test("the upgrade is 403 when the token grants nothing on the subject", async () => {
    const token = hs256(claims({ allow: [allowSubjects(["m.>"], ["pub", "sub"])], deny: [{ subjects: ["m.no"], actions: ["pub", "sub"] }] }));
    for (const subject of ["n.elsewhere", "m.no"]) {
      const res = await rawUpgrade(`${server.url}/v1/stream/${subject}?token=${token}`);
      assert.equal(res.status, 403, res.body);
      assert.equal(JSON.parse(res.body).error.code, "forbidden");
    }
    const bearer = await rawUpgrade(`${server.url}/v1/stream/m.yes`, { authorization: `Bearer ${token}` });
    assert.equal(bearer.status, 101);
    assert.equal(bearer.hello.op, "hello");
    assert.equal(bearer.hello.sub, "tester", "a token connection learns its sub");
    assert.equal(bearer.hello.exp, JSON.parse(Buffer.from(token.split(".")[1], "base64url")).exp);
  });
});

describe("files: files:read and files:write on key prefixes", () => {
  test("reads, writes and listings follow the prefixes", async () => {
    const put = await call("PUT", "/v1/files/reports/2026.csv", { headers: { ...master, "content-type": "text/csv" }, body: "a,b\n" });
    assert.equal(put.status, 201, put.text);
    await call("PUT", "/v1/files/secret/plans.txt", { headers: master, body: "x" });
    const reader = hs256(claims({
      allow: [{ files: "reports/", actions: ["files:read"] }],
      deny: [{ files: ["reports/private/"], actions: ["files:read"] }],
    }));
    assert.equal((await call("GET", "/v1/files/reports/2026.csv", { token: reader })).text, "a,b\n");
    assert.equal((await call("HEAD", "/v1/files/reports/2026.csv", { token: reader })).status, 200);
    assertRefused(await call("GET", "/v1/files/secret/plans.txt", { token: reader }), 403, "forbidden", reader, "read outside the prefix");
    assertRefused(await call("GET", "/v1/files/reports/private/x", { token: reader }), 403, "forbidden", reader, "read under a denied prefix");
    assertRefused(await call("PUT", "/v1/files/reports/new.csv", { token: reader, body: "x" }), 403, "forbidden", reader, "write with read only");
    assertRefused(await call("DELETE", "/v1/files/reports/2026.csv", { token: reader }), 403, "forbidden", reader, "delete with read only");
    const listed = await call("GET", "/v1/files", { token: reader, query: "?prefix=reports/2" });
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(listed.json.objects.map((o) => o.key), ["reports/2026.csv"]);
    const wide = await call("GET", "/v1/files", { token: reader, query: "?prefix=reports/" });
    assertRefused(wide, 403, "forbidden", reader, "a listing reaching into a denied prefix");
    assert.match(wide.json.error.message, /reports\//);
    assertRefused(await call("GET", "/v1/files", { token: reader }), 403, "forbidden", reader, "listing everything");

    const writer = hs256(claims({ allow: [{ files: ["uploads/"], actions: ["files:write"] }] }));
    assert.equal((await call("PUT", "/v1/files/uploads/a.bin", { token: writer, body: "1" })).status, 201);
    assert.equal((await call("DELETE", "/v1/files/uploads/a.bin", { token: writer })).status, 204);
    assertRefused(await call("GET", "/v1/files/uploads/a.bin", { token: writer }), 403, "forbidden", writer, "read with write only");
    const subjectsOnly = hs256(claims({ allow: [allowSubjects([">"], ["pub", "sub", "state", "admin"])] }));
    assertRefused(await call("GET", "/v1/files/reports/2026.csv", { token: subjectsOnly }), 403, "forbidden", subjectsOnly, "subjects-only token");
  });
});

describe("credentials that are not valid: 401 on every surface", () => {
  const payload = () => claims({
    jti: `j-${Math.random()}`,
    allow: [allowSubjects([">"], ["pub", "sub", "state", "admin"]), { files: "", actions: ["files:read", "files:write"] }],
  });
  const cases = [
    ["expired", () => hs256(claims({ ttl: -10, allow: [allowSubjects([">"], ["sub"])] })), "token_expired", /expired/],
    ["not yet valid", () => hs256({ ...payload(), nbf: Math.floor(Date.now() / 1000) + 600 }), "unauthorized", /not valid yet/],
    ["bad signature (HS256)", () => hs256(payload(), "some-other-secret"), "unauthorized", /signature/],
    ["bad signature (EdDSA, a key the server lists under another kid)", () => eddsa(payload(), STRANGER_KEY, CURRENT_KEY.kid), "unauthorized", /signature/],
    ["alg none", () => unsigned(payload()), "unauthorized", /alg none/],
    ["alg HS512", () => hs256(payload(), undefined, { alg: "HS512", typ: "JWT" }), "unauthorized", /HS512/],
    ["alg RS256", () => hs256(payload(), undefined, { alg: "RS256", typ: "JWT" }), "unauthorized", /RS256/],
    ["unknown kid", () => eddsa(payload(), STRANGER_KEY), "unauthorized", /kid "k-unknown"/],
    ["malformed", () => "eyJhbGciOiJIUzI1NiJ9.not-json.x", "unauthorized", /malformed/],
  ];
  const surfaces = (subject) => [
    ["HTTP publish", "POST", `/v1/stream/${subject}`, '{"n":1}'],
    ["HTTP read", "GET", `/v1/stream/${subject}/messages`],
    ["/ds read", "GET", `/ds/v1/stream/${subject}`],
    ["/ds append", "POST", `/ds/v1/stream/${subject}`, "[1]"],
    ["file read", "GET", "/v1/files/reports/2026.csv"],
    ["file list", "GET", "/v1/files"],
  ];

  for (const [name, make, code, message] of cases) {
    test(name, async () => {
      const token = make();
      const subject = uniqueSubject("cred");
      await seed(subject);
      for (const [surface, method, path, body] of surfaces(subject)) {
        const res = await call(method, path, { token, body, headers: body ? { "content-type": "application/json" } : {} });
        assertRefused(res, 401, code, token, `${name} on ${surface}`);
        assert.match(res.json.error.message, message, surface);
      }
      const upgrade = await rawUpgrade(`${server.url}/v1/stream/${subject}?token=${token}`);
      assert.equal(upgrade.status, 401, `${name} upgrade`);
      assert.equal(JSON.parse(upgrade.body).error.code, code);
    });
  }

  test("revoked, by jti and by sub: 401 at once on every surface", async () => {
    const byJti = hs256({ ...payload(), jti: "to-revoke-1" });
    const bySub = hs256({ ...payload(), sub: "leaky-service" });
    const other = hs256({ ...payload(), sub: "good-service", jti: "keep" });
    const subject = uniqueSubject("rev");
    await seed(subject);
    for (const token of [byJti, bySub, other]) {
      assert.equal((await call("GET", `/v1/stream/${subject}`, { token })).status, 200);
    }
    const revokeJti = await call("POST", "/v1/tokens/revoke", { headers: master, body: '{"jti":"to-revoke-1"}' });
    assert.equal(revokeJti.status, 200, revokeJti.text);
    assert.equal(revokeJti.json.revoked.jti, "to-revoke-1");
    assert.ok(revokeJti.json.revoked.expiresAt > Date.now());
    const revokeSub = await call("POST", "/v1/tokens/revoke", { headers: master, body: JSON.stringify({ sub: "leaky-service", issuedBefore: Date.now() + 1000 }) });
    assert.equal(revokeSub.status, 200, revokeSub.text);
    for (const token of [byJti, bySub]) {
      for (const [surface, method, path, body] of surfaces(subject)) {
        const res = await call(method, path, { token, body, headers: body ? { "content-type": "application/json" } : {} });
        assertRefused(res, 401, "unauthorized", token, `revoked on ${surface}`);
        assert.match(res.json.error.message, /revoked/);
      }
      assert.equal((await rawUpgrade(`${server.url}/v1/stream/${subject}?token=${token}`)).status, 401);
    }
    assert.equal((await call("GET", `/v1/stream/${subject}`, { token: other })).status, 200, "other tokens are unaffected");
    const listed = await call("GET", "/v1/tokens/revocations", { headers: master });
    assert.ok(listed.json.revocations.some((r) => r.jti === "to-revoke-1"));
    assert.ok(listed.json.version >= 2);
  });
});

describe("key rotation", () => {
  test("old and new API keys, HS256 secrets and EdDSA keys all work during a rotation", async () => {
    const subject = uniqueSubject("rot");
    const grant = { allow: [allowSubjects([subject], ["pub"])] };
    const credentials = [
      ["API_KEY", { authorization: `Bearer ${TEST_KEY}` }],
      ["API_KEY_PREVIOUS", { "x-api-key": PREVIOUS_API_KEY }],
      ["TOKEN_SECRET", { authorization: `Bearer ${hs256(claims(grant))}` }],
      ["TOKEN_SECRET_PREVIOUS", { authorization: `Bearer ${hs256(claims(grant), PREVIOUS_TOKEN_SECRET)}` }],
      ["EdDSA current kid", { authorization: `Bearer ${eddsa(claims(grant), CURRENT_KEY)}` }],
      ["EdDSA old kid", { authorization: `Bearer ${eddsa(claims(grant), OLD_KEY)}` }],
    ];
    for (const [name, headers] of credentials) {
      const res = await call("POST", `/v1/stream/${subject}`, { headers, body: `{"via":"${name}"}` });
      assert.equal(res.status, 201, `${name}: ${res.text}`);
    }
    assertRefused(await call("POST", `/v1/stream/${subject}`, { headers: { "x-api-key": "not-a-key" }, body: "1" }), 401, "unauthorized", null, "wrong key");
  });
});

describe("minting and token administration", () => {
  test("POST /v1/tokens mints a token that works, with exactly the rights asked for", async () => {
    const subject = under("orders.eu");
    await seed(subject);
    const res = await call("POST", "/v1/tokens", {
      headers: master,
      body: JSON.stringify({ sub: "browser-1", ttl: 600, allow: [allowSubjects(["orders.eu.>", `${subject}`], ["sub"])] }),
    });
    assert.equal(res.status, 201, res.text);
    const { token, exp, jti } = res.json;
    assert.ok(Math.abs(exp - (Math.floor(Date.now() / 1000) + 600)) <= 5);
    assert.match(jti, /^[0-9a-f]{32}$/);
    const claimsOf = JSON.parse(Buffer.from(token.split(".")[1], "base64url"));
    assert.equal(claimsOf.sub, "browser-1");
    assert.equal((await call("GET", `/v1/stream/${subject}/messages`, { token, query: "?from=1" })).status, 200);
    assertRefused(await call("POST", `/v1/stream/${subject}`, { token, body: "1" }), 403, "forbidden", token, "read-only token publishing");
  });

  test("minting refuses bad requests and anything but the API key", async () => {
    const bad = [
      [{ sub: "a", ttl: 0 }, /ttl must be 1 to 604800/],
      [{ sub: "a", ttl: 604801 }, /ttl must be/],
      [{ sub: "a", ttl: 60, allow: [{ subjects: ["a.>.b"], actions: ["sub"] }] }, /last token/],
      [{ sub: "a", ttl: 60, allow: [{ subjects: ["a"], actions: ["publish"] }] }, /unknown action/],
      [{ sub: "", ttl: 60 }, /sub must be/],
      [{ ttl: 60 }, /sub/],
      [{ sub: "a", ttl: 60, scope: "all" }, /unknown field/],
    ];
    for (const [body, message] of bad) {
      const res = await call("POST", "/v1/tokens", { headers: master, body: JSON.stringify(body) });
      assertRefused(res, 400, "bad_request", null, JSON.stringify(body));
      assert.match(res.json.error.message, message);
    }
    const token = hs256(claims({ allow: [allowSubjects([">"], ["pub", "sub", "state", "admin"])] }));
    for (const path of ["/v1/tokens", "/v1/tokens/revoke"]) {
      assertRefused(await call("POST", path, { token, body: '{"sub":"x","ttl":60}' }), 403, "forbidden", token, `${path} with a token`);
    }
    assertRefused(await call("GET", "/v1/tokens/revocations", { token }), 403, "forbidden", token, "revocations with a token");
    assertRefused(await call("POST", "/v1/tokens/revoke", { headers: master, body: '{"jti":"a","sub":"b"}' }), 400, "bad_request", null, "ambiguous revocation");
    assert.equal((await call("GET", "/v1/tokens", { headers: master })).status, 405);
  });
});
