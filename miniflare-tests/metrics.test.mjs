// `GET /metrics` on real workerd, read with a strict parser of the Prometheus text format
// (prometheus.mjs): after known traffic (messages, bytes, duplicates, state conflicts, errors
// of several codes, a consumer that never acks and one that is done), every value is what
// that traffic makes it. Also: the per-subject cap and prefixes, who may scrape, and a server
// with an Analytics Engine binding. Reports come every 200 ms; each wait polls the scrape
// until it shows the expected values, within a generous bound.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, TEST_KEY } from "./server.mjs";
import { httpCall } from "./http-client.mjs";
import { connect, uniqueSubject, until } from "./ws-client.mjs";
import { parsePrometheus, sampleValue } from "./prometheus.mjs";
import { allowSubjects, claims, hs256, startTokenServer } from "./tokens.mjs";

const REPORTED = 20_000;

describe("the strict parser", () => {
  test("reads a well-formed exposition and refuses what the format forbids", () => {
    const good = [
      "# HELP a_total Things, with a \\\\ and a \\n.",
      "# TYPE a_total counter",
      'a_total{x="q\\"uote",y="back\\\\slash\\n"} 3',
      "# TYPE h histogram",
      'h_bucket{le="0.1"} 1',
      'h_bucket{le="+Inf"} 2',
      "h_sum 0.3",
      "h_count 2",
      "",
    ].join("\n");
    const families = parsePrometheus(good);
    assert.equal(sampleValue(families, "a_total", { x: 'q"uote', y: "back\\slash\n" }), 3);
    assert.equal(families.get("a_total").help, "Things, with a \\ and a \n.");
    for (const [bad, why] of [
      ["a 1", /end with a line feed/],
      ["1a 1\n", /no metric name/],
      ['a{x="1"} 1\na{x="1"} 2\n', /series given twice/],
      ["a 1\n# TYPE a gauge\n", /TYPE after the first sample/],
      ["# TYPE a gauge\n# TYPE a gauge\n", /second TYPE/],
      ["a 1\nb 1\na 2\n", /split into two groups/],
      ['a{x="\\t"} 1\n', /invalid escape/],
      ["a one\n", /not a number/],
      ["# TYPE a counter\na -1\n", /must not be negative/],
      ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /not cumulative/],
      ['# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', /differs from _count/],
      ["# TYPE a gauges\n", /unknown type/],
    ]) {
      assert.throws(() => parsePrometheus(bad), why, JSON.stringify(bad));
    }
  });
});

describe("metrics from known traffic", () => {
  let server;
  const sockets = [];
  const prefix = `${uniqueSubject("m")}.`;
  const subject = `${prefix}traffic`;
  const capped = ["a", "b", "c", "d"].map((n) => `${prefix}cap.${n}`);

  before(async () => {
    server = await startServer({
      vars: { DIRECTORY_REPORT_MS: "200", ACK_WAIT_MS: "300", MAX_DELIVER: "1000", METRICS_MAX_SUBJECTS: "3" },
    });
  });
  after(async () => {
    for (const s of sockets) s.close();
    await server?.stop();
  });

  const call = (method, path, options) => httpCall(server, method, path, options);

  async function scrape(query = "") {
    const res = await call("GET", `/metrics${query}`);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    return parsePrometheus(res.text);
  }

  /** Polls the scrape until every `[name, labels, expected]` holds (expected: a number or a test). */
  async function scrapeUntil(query, expectations) {
    let mismatch;
    try {
      return await until(async () => {
        const families = await scrape(query);
        mismatch = expectations.find(([name, labels, expected]) => {
          const value = sampleValue(families, name, labels);
          return typeof expected === "function" ? !expected(value) : value !== expected;
        });
        return !mismatch && families;
      }, REPORTED, "the expected metrics", 100);
    } catch (e) {
      throw new Error(`${e.message}; still different: ${JSON.stringify(mismatch)}`);
    }
  }

  test("every value follows the traffic", async () => {
    const bodies = ['{"n":1}', '{"n":22}', '{"n":333}', "[4,4,4,4]", '"five"'];
    for (const body of bodies) assert.equal((await call("POST", `/v1/stream/${subject}`, { body })).status, 201);
    // Duplicates: one over HTTP, one over the socket (each stores once, then is a hit).
    const keyed = { headers: { "idempotency-key": "k-1" }, body: '{"keyed":1}' };
    assert.equal((await call("POST", `/v1/stream/${subject}`, keyed)).status, 201);
    assert.equal((await call("POST", `/v1/stream/${subject}`, keyed)).status, 200);
    const socket = await connect(server, subject, "traffic socket");
    sockets.push(socket);
    await socket.ok({ op: "pub", data: { ws: 1 }, msgId: "m-1" });
    assert.equal((await socket.ok({ op: "pub", data: { ws: 1 }, msgId: "m-1" })).duplicate, true);
    const bytes = [...bodies, '{"keyed":1}', '{"ws":1}'].reduce((sum, b) => sum + b.length, 0);
    // State conflicts: one over the socket (err conflict), one over HTTP (412).
    assert.equal((await socket.request({ op: "state.put", state: 1, version: 5 })).code, "conflict");
    assert.equal((await call("PUT", `/v1/stream/${subject}/state`, { headers: { "if-match": '"9"' }, body: "1" })).status, 412);
    // Errors: two bad requests (a frame, a query), one not found.
    assert.equal((await socket.request({ op: "nope" })).code, "bad_request");
    assert.equal((await call("GET", `/v1/stream/${subject}/messages?limit=0`)).status, 400);
    assert.equal((await call("DELETE", `/v1/stream/${subject}/consumers/nobody`)).status, 404);
    // Consumers: "slow" takes 2 and never acks (redelivered every 300 ms); "done" is at the end.
    await socket.ok({ op: "sub", from: "first", consumer: "slow", window: 2 });
    assert.equal((await call("PUT", `/v1/stream/${subject}/consumers/done`, { body: '{"acked":7}' })).status, 200);

    const on = { subject };
    const families = await scrapeUntil(`?prefix=${subject}`, [
      ["durable_stream_subjects", {}, 1],
      ["durable_stream_connections", {}, 1],
      ["durable_stream_subscriptions", {}, 1],
      ["durable_stream_messages_total", on, 7],
      ["durable_stream_bytes_total", on, bytes],
      ["durable_stream_last_seq", on, 7],
      ["durable_stream_consumer_num_pending", { ...on, consumer: "slow" }, 7],
      ["durable_stream_consumer_num_ack_pending", { ...on, consumer: "slow" }, 2],
      ["durable_stream_consumer_redelivered_total", { ...on, consumer: "slow" }, (v) => v >= 2],
      ["durable_stream_consumer_num_pending", { ...on, consumer: "done" }, 0],
      ["durable_stream_consumer_num_ack_pending", { ...on, consumer: "done" }, 0],
      ["durable_stream_consumer_redelivered_total", { ...on, consumer: "done" }, 0],
      ["durable_stream_dedup_hits_total", {}, 2],
      ["durable_stream_state_conflicts_total", {}, 2],
      ["durable_stream_errors_total", { code: "bad_request" }, 2],
      ["durable_stream_errors_total", { code: "conflict" }, 2],
      ["durable_stream_errors_total", { code: "not_found" }, 1],
      ["durable_stream_publish_commit_seconds_count", {}, (v) => v >= 1],
    ]);
    assert.deepEqual([...families.get("durable_stream_errors_total").samples.map((s) => s.labels.code)], ["bad_request", "conflict", "not_found"]);
    assert.equal(families.get("durable_stream_publish_commit_seconds").type, "histogram");
    assert.equal(families.get("durable_stream_consumer_redelivered_total").type, "counter");
    assert.equal(families.get("durable_stream_messages_total").type, "gauge");
    const les = families.get("durable_stream_publish_commit_seconds").samples.filter((s) => s.labels.le).map((s) => s.labels.le);
    assert.deepEqual(les, ["0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]);
    // The consumers API agrees with the series.
    const slow = (await call("GET", `/v1/stream/${subject}/consumers`)).json.consumers.find((c) => c.name === "slow");
    assert.equal(slow.ackPending, 2);
    assert.ok(slow.redelivered >= 2);
  });

  test("series go to the first METRICS_MAX_SUBJECTS subjects the prefixes choose; the gauges count every subject", async () => {
    await Promise.all(capped.map((name) => call("POST", `/v1/stream/${name}`, { body: "1" })));
    const families = await scrapeUntil(`?prefix=${prefix}cap.`, [["durable_stream_subjects", {}, 5]]);
    const series = families.get("durable_stream_last_seq").samples.map((s) => s.labels.subject);
    assert.deepEqual(series, capped.slice(0, 3));
    const two = await scrape(`?prefix=${capped[3]},${subject}`);
    assert.deepEqual(two.get("durable_stream_last_seq").samples.map((s) => s.labels.subject), [capped[3], subject]);
    const refused = await call("GET", "/metrics?prefix=a/b");
    assert.equal(refused.status, 400);
    assert.match(refused.json.error.message, /`prefix` must be the start of a subject name/);
    assert.equal((await call("GET", "/metrics?subject=x")).status, 400);
  });

  test("the API key may scrape; a token may not; no credentials is 401", async () => {
    assert.equal((await call("GET", "/metrics", { auth: {} })).status, 401);
    assert.equal((await call("GET", "/metrics", { auth: { "x-api-key": TEST_KEY } })).status, 200);
  });
});

describe("who may scrape", () => {
  let server;
  before(async () => {
    server = await startTokenServer();
  });
  after(() => server?.stop());

  test("an access token, whatever it grants, gets 403", async () => {
    const token = hs256(claims({ allow: [allowSubjects([">"], ["pub", "sub", "state", "admin"])] }));
    const res = await httpCall(server, "GET", "/metrics", { auth: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 403);
    assert.equal(res.json.error.code, "forbidden");
    assert.match(res.json.error.message, /metrics needs the API key/);
  });
});

describe("with an Analytics Engine binding", () => {
  let server;
  before(async () => {
    server = await startServer({
      vars: { DIRECTORY_REPORT_MS: "200" },
      config: { analytics_engine_datasets: [{ binding: "METRICS", dataset: "durable_stream_test" }] },
    });
  });
  after(() => server?.stop());

  test("subjects still report to the directory", async () => {
    const subject = uniqueSubject("ae");
    assert.equal((await httpCall(server, "POST", `/v1/stream/${subject}`, { body: "1" })).status, 201);
    await until(async () => {
      const res = await httpCall(server, "GET", `/metrics?prefix=${subject}`);
      return sampleValue(parsePrometheus(res.text), "durable_stream_last_seq", { subject }) === 1;
    }, REPORTED, "the subject's report", 100);
    assert.doesNotMatch(server.output(), /Analytics Engine/);
  });
});
