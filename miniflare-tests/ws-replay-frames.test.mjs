// Catch-up frames are made by SQLite (store::read_frame): each `msgs` frame holds at most
// REPLAY_PAGE_MESSAGES messages and at most REPLAY_FRAME_BYTES by the protocol's frame size
// (data + headers + 12 + 48 per message), except one larger message alone; frames are filled
// greedily; a single message goes as `msg`; bytes are verbatim; redeliveries are cut the same way.

import { test } from "node:test";
import assert from "node:assert/strict";
import { uniqueSubject } from "./ws-client.mjs";
import { serverPerFile } from "./harness.mjs";
import { startServer } from "./server.mjs";

const FRAME_BYTES = 4096;
const PAGE = 50;
const ACK_WAIT_MS = 1500;
const harness = serverPerFile(() =>
  startServer({ vars: { REPLAY_FRAME_BYTES: String(FRAME_BYTES), REPLAY_PAGE_MESSAGES: String(PAGE), ACK_WAIT_MS: String(ACK_WAIT_MS) } }),
);
const { open } = harness;

/** The protocol's size of a message in a frame (OutgoingMessage::frame_size). */
const frameSize = (m) => Buffer.byteLength(m.raw) + (m.rawHeaders === undefined ? 0 : Buffer.byteLength(m.rawHeaders) + 12) + 48;

/** Splits the client's messages by the frames that carried them. */
function framesOfMessages(c, redelivered) {
  const out = [];
  let k = 0;
  for (const { frame } of c.frames) {
    if (frame.op !== "msg" && frame.op !== "msgs") continue;
    const n = frame.op === "msg" ? 1 : frame.messages.length;
    const msgs = c.msgs.slice(k, k + n);
    k += n;
    if (msgs.every((m) => m.redelivered === redelivered)) out.push({ op: frame.op, msgs });
  }
  return out;
}

function assertPacked(frames, expectedSeqs) {
  assert.deepEqual(frames.flatMap((f) => f.msgs.map((m) => m.seq)), expectedSeqs);
  for (const [i, f] of frames.entries()) {
    const bytes = f.msgs.reduce((sum, m) => sum + frameSize(m), 0);
    assert.equal(f.op, f.msgs.length === 1 ? "msg" : "msgs");
    assert.ok(f.msgs.length <= PAGE, `frame ${i}: ${f.msgs.length} messages`);
    assert.ok(f.msgs.length === 1 || bytes <= FRAME_BYTES, `frame ${i}: ${bytes} bytes in ${f.msgs.length} messages`);
    const next = frames[i + 1]?.msgs[0];
    // Greedy: the next frame's first message did not fit (or the page was full).
    if (next) assert.ok(f.msgs.length === PAGE || bytes + frameSize(next) > FRAME_BYTES, `frame ${i} could have taken seq ${next.seq}`);
  }
}

test("catch-up frames are bounded by messages and bytes, greedy, verbatim; redeliveries too", { timeout: 60_000 }, async () => {
  const subject = uniqueSubject("frames");
  const pub = await open(subject, "pub");
  const published = new Map();
  for (let i = 1; i <= 140; i++) {
    // Mostly small messages, every 7th with headers, every 23rd larger than a frame on its own.
    const data = i % 23 === 0 ? `{"big":"${"b".repeat(FRAME_BYTES + 100)}"}` : `{"n":${i},"pad":"${"p".repeat((i * 37) % 300)}"}`;
    const headers = i % 7 === 0 ? `,"headers":{"k":"v${i}"}` : "";
    pub.send(`{"op":"pub","id":${i},"data":${data}${headers}}`);
    published.set(i, data);
  }
  await pub.nextFrame((f) => f.id === 140, { since: 0, timeout: 20_000 });

  const sub = await open(subject, "sub");
  await sub.ok({ op: "sub", from: "first", window: 10_000 });
  await sub.waitForMessages(140, 20_000);
  const seqs = Array.from({ length: 140 }, (_, i) => i + 1);
  assertPacked(framesOfMessages(sub, false), seqs);
  for (const m of sub.msgs) assert.equal(m.raw, published.get(m.seq), `seq ${m.seq} verbatim`);
  assert.equal(sub.msgs.filter((m) => m.rawHeaders !== undefined).length, 20);

  // Nothing acked: after the ack wait everything comes again, flagged, cut the same way.
  await sub.waitForMessages(280, 30_000);
  // The first round of redeliveries (a later round may already be on its way).
  let taken = 0;
  const again = framesOfMessages(sub, true).filter((f) => (taken += f.msgs.length) <= 140);
  assertPacked(again, seqs);
  assert.ok(again.every((f) => f.msgs.every((m) => m.redelivered)));
});
