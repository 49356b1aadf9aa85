// The live tail: a WebSocket subscription from "new" (docs/PROTOCOL.md § WebSocket protocol)
// showing each message as it is published, newest first. It acks as it goes (combined, as the
// protocol asks), and after a dropped connection resumes right after the last message shown.

import { streamSocketUrl, subjectInfo } from "../api.js";
import { banner, h } from "../dom.js";
import { describeError } from "../errors.js";
import { formatCount, formatRate } from "../format.js";
import { member, parseJson, toValue } from "../json.js";
import { messageCard, messagesOf, readMessage } from "../message-card.js";

/** Messages kept on screen; older ones are dropped from the page (not from the subject). */
const KEEP = 200;
const WINDOW = 1000;
/** Acks are cumulative: one per quarter second, or at half the window, is plenty. */
const ACK_DELAY_MS = 250;
const RECONNECT_DELAYS_MS = [1_000, 2_000, 5_000, 10_000];

/** Close codes the server uses (docs/PROTOCOL.md § Connection lifecycle), and what to do. */
const CLOSED_BECAUSE = {
  4001: "the subject was deleted. Open the tail again to follow its new epoch.",
  4401: "your token expired. Sign in again with a fresh token.",
  4403: "your token was revoked. Sign in again with a valid token.",
};

export function tailPanel(host, context) {
  const { subject } = context;
  const problem = banner();
  const status = h("span", { class: "pill", role: "status" }, "Connecting…");
  const counter = h("span", { class: "muted" });
  const pause = h("button", { type: "button", class: "button", "aria-pressed": "false" }, "Pause");
  const clear = h("button", { type: "button", class: "button ghost" }, "Clear");
  const reconnect = h("button", { type: "button", class: "button", hidden: true }, "Reconnect");
  const list = h("div", { class: "messages tail", "aria-label": `New messages on ${subject}` });
  const placeholder = h("p", { class: "empty muted" }, "Waiting for new messages… publish one (Publish tab, another client) and it appears here.");
  host.append(h("div", { class: "toolbar" }, status, counter, h("div", { class: "toolbar-end" }, pause, clear, reconnect)), problem.element, placeholder, list);

  let socket = null;
  let closedByUs = false;
  let lastSeq = null; // the newest sequence received: a reconnect resumes after it
  let acked = 0;
  let ackTimer = null;
  let received = 0;
  let arrivals = []; // arrival times of the last few seconds, for the rate
  let waiting = []; // received while paused, shown on resume
  let isPaused = false;
  let attempts = 0;
  let retryTimer = null;

  const setStatus = (text, kind) => {
    status.textContent = text;
    status.dataset.kind = kind;
  };

  function showCounter() {
    const now = performance.now();
    arrivals = arrivals.filter((t) => now - t < 5_000);
    counter.textContent = `${formatCount(received)} received · ${formatRate(arrivals.length / 5)}${isPaused ? ` · ${formatCount(waiting.length)} waiting` : ""}`;
  }

  function sendAck() {
    clearTimeout(ackTimer);
    ackTimer = null;
    if (lastSeq > acked && socket?.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ op: "ack", seq: lastSeq }));
      acked = lastSeq;
    }
  }

  function show(messages) {
    placeholder.hidden = true;
    list.prepend(...messages.reverse().map(messageCard));
    while (list.children.length > KEEP) list.lastElementChild.remove();
  }

  function receive(messages) {
    const fresh = messages.filter((m) => lastSeq == null || m.seq > lastSeq);
    if (!fresh.length) return;
    lastSeq = fresh.at(-1).seq;
    received += fresh.length;
    arrivals.push(...fresh.map(() => performance.now()));
    if (isPaused) waiting = [...waiting, ...fresh].slice(-KEEP);
    else show(fresh);
    showCounter();
    if (lastSeq - acked >= WINDOW / 2) sendAck();
    else ackTimer ??= setTimeout(sendAck, ACK_DELAY_MS);
  }

  function onFrame(event) {
    let frame;
    try {
      frame = parseJson(event.data);
    } catch {
      return problem.show("The server sent a frame the console cannot read; the tail goes on. Reload if messages seem missing.");
    }
    const op = toValue(member(frame, "op"));
    if (op === "hello") {
      const from = lastSeq == null ? "new" : lastSeq + 1;
      socket.send(JSON.stringify({ op: "sub", id: "tail", from, window: WINDOW }));
    } else if (op === "ok") {
      attempts = 0;
      problem.clear();
      setStatus("Live", "live");
      context.refreshInfo(); // counts this subscriber
    } else if (op === "msg") {
      receive([readMessage(frame)]);
    } else if (op === "msgs") {
      receive(messagesOf(frame));
    } else if (op === "err") {
      const error = { status: 0, code: toValue(member(frame, "code")), message: toValue(member(frame, "message")) };
      problem.show(describeError("The live tail reported an error", error));
    }
  }

  function connect() {
    reconnect.hidden = true;
    closedByUs = false;
    acked = lastSeq ?? 0; // the new subscription starts after lastSeq: nothing before it to ack
    setStatus(attempts ? `Reconnecting (attempt ${attempts + 1})…` : "Connecting…", "connecting");
    let opened = false;
    socket = new WebSocket(streamSocketUrl(subject));
    socket.addEventListener("open", () => (opened = true));
    socket.addEventListener("message", onFrame);
    socket.addEventListener("close", (event) => onClose(event, opened));
  }

  async function onClose(event, opened) {
    clearTimeout(ackTimer);
    ackTimer = null;
    if (closedByUs) return;
    const known = CLOSED_BECAUSE[event.code];
    if (known) {
      if (event.code === 4001) lastSeq = null; // a new epoch: its sequences start over
      setStatus("Closed", "closed");
      problem.show(`The live tail was closed: ${known}`);
      reconnect.hidden = false;
      return;
    }
    if (!opened) {
      // A refused upgrade gives the page no status: ask over HTTP what the server says.
      try {
        await subjectInfo(subject);
      } catch (error) {
        setStatus("Closed", "closed");
        problem.show(describeError("Could not open the live tail", error));
        reconnect.hidden = false;
        return;
      }
    }
    if (attempts >= RECONNECT_DELAYS_MS.length) {
      setStatus("Disconnected", "closed");
      problem.show(`The live tail lost its connection (code ${event.code}) and could not reconnect. Check that the server is running, then press Reconnect.`);
      reconnect.hidden = false;
      return;
    }
    const delay = RECONNECT_DELAYS_MS[attempts++];
    setStatus(`Disconnected; reconnecting in ${delay / 1000} s`, "connecting");
    retryTimer = setTimeout(connect, delay);
  }

  pause.addEventListener("click", () => {
    isPaused = !isPaused;
    pause.setAttribute("aria-pressed", String(isPaused));
    pause.textContent = isPaused ? "Resume" : "Pause";
    if (!isPaused && waiting.length) show(waiting);
    waiting = [];
    showCounter();
  });
  clear.addEventListener("click", () => {
    list.replaceChildren();
    placeholder.hidden = false;
  });
  reconnect.addEventListener("click", () => {
    attempts = 0;
    problem.clear();
    connect();
  });

  connect();
  const counterTimer = setInterval(showCounter, 1_000);
  return {
    unmount() {
      closedByUs = true;
      clearTimeout(retryTimer);
      clearInterval(counterTimer);
      sendAck();
      socket?.close(1000, "tail closed");
    },
  };
}
