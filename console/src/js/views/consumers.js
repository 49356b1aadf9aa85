// Durable consumers: where each one is (acked), how far behind (pending, drawn as a lag bar),
// what is in flight, and actions to move its cursor or delete it (docs/PROTOCOL.md § Consumers).

import { deleteConsumer, listConsumers, moveConsumer } from "../api.js";
import { banner, h, replaceChildren, setVar } from "../dom.js";
import { openDialog } from "../dialog.js";
import { describeError, InputProblem } from "../errors.js";
import { formatAgo, formatCount, formatTime } from "../format.js";
import { poller } from "../poll.js";

const POLL_MS = 3_000;

/** The share of the retained messages the consumer has not acked yet, 0–1. */
function lagShare(consumer, info, last) {
  const retained = Math.max(1, last - (info?.first ?? 1) + 1);
  return Math.min(1, consumer.pending / retained);
}

function lagBar(consumer, info, last) {
  const bar = h("span", { class: "lag-bar", "aria-hidden": "true" }, h("span", { class: "lag-fill" }));
  setVar(bar, "--lag", lagShare(consumer, info, last));
  bar.dataset.level = consumer.pending === 0 ? "none" : lagShare(consumer, info, last) > 0.5 ? "high" : "some";
  return h("span", { class: "cell-row" }, bar, h("span", {}, consumer.pending ? `${formatCount(consumer.pending)} behind` : "caught up"));
}

export function consumersPanel(host, context) {
  const { subject } = context;
  const problem = banner();
  const notice = banner("info");
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "data responsive consumers-table" },
    h("caption", { class: "visually-hidden" }, `Durable consumers of ${subject}`),
    h("thead", {}, h("tr", {}, ["Consumer", "Acked", "Lag", "Ack pending", "Redelivered", "Last activity", "Connected", "Actions"].map((label, i) => h("th", { scope: "col", class: (i && i < 6) || i === 7 ? "numeric" : "" }, label)))),
    tbody,
  );
  const empty = h(
    "div",
    { class: "empty", hidden: true },
    h("p", {}, "No durable consumers."),
    h("p", { class: "muted" }, 'A subscriber creates one by naming it: {"op":"sub","consumer":"billing"}.'),
  );
  // The server lists at most 1,000 consumers (by name) and says when there are more.
  const more = h("p", { class: "muted", hidden: true }, "Showing the first 1,000 consumers by name; the subject has more.");
  host.append(notice.element, problem.element, h("div", { class: "table-wrap" }, table), more, empty);

  const refresh = poller(async () => {
    try {
      const [{ consumers, last, truncated }, info] = await Promise.all([listConsumers(subject), context.refreshInfo()]);
      problem.clear();
      render(consumers, last, info);
      more.hidden = !truncated;
    } catch (error) {
      problem.show(describeError(`Could not list the consumers of ${subject}`, error));
    }
  }, POLL_MS);

  function render(consumers, last, info) {
    table.hidden = !consumers.length;
    empty.hidden = !!consumers.length;
    replaceChildren(
      tbody,
      consumers.map((consumer) =>
        h(
          "tr",
          { "data-consumer": consumer.name },
          h("td", { "data-label": "Consumer", class: "name" }, consumer.name),
          h("td", { "data-label": "Acked", class: "numeric" }, `#${formatCount(consumer.acked)}`),
          h("td", { "data-label": "Lag", class: "numeric" }, lagBar(consumer, info, last)),
          h("td", { "data-label": "Ack pending", class: "numeric" }, formatCount(consumer.ackPending)),
          h("td", { "data-label": "Redelivered", class: "numeric" }, formatCount(consumer.redelivered)),
          h("td", { "data-label": "Last activity", class: "numeric", title: formatTime(consumer.lastActivity) }, formatAgo(consumer.lastActivity)),
          h("td", { "data-label": "Connected" }, h("span", { class: "cell-row" }, h("span", { class: `dot ${consumer.connected ? "on" : "off"}` }), consumer.connected ? "yes" : "no")),
          h(
            "td",
            { "data-label": "Actions", class: "actions" },
            h(
              "span",
              { class: "cell-row" },
              h("button", { type: "button", class: "button small", onclick: () => move(consumer, last, info), "aria-label": `Move the cursor of ${consumer.name}` }, "Move cursor…"),
              h("button", { type: "button", class: "button small danger-ghost", onclick: () => remove(consumer), "aria-label": `Delete ${consumer.name}` }, "Delete…"),
            ),
          ),
        ),
      ),
    );
  }

  async function move(consumer, last, info) {
    const first = info?.first ?? 1;
    const input = h("input", { id: "move-acked", type: "number", min: "0", max: String(last), required: true, inputmode: "numeric", value: String(consumer.acked) });
    const preset = (label, value) => h("button", { type: "button", class: "button small ghost", onclick: () => (input.value = String(value)) }, label);
    const moved = await openDialog({
      title: `Move the cursor of ${consumer.name}`,
      body: [
        h("p", { class: "muted" }, `The consumer has acknowledged up to #${formatCount(consumer.acked)}; the subject's newest message is #${formatCount(last)}. Its next delivery is the one after the new position, also on a live subscription.`),
        h("div", { class: "field" }, h("label", { for: "move-acked" }, "Acknowledged up to (sequence)"), input),
        h("div", { class: "presets" }, preset(`Replay all (from #${formatCount(first)})`, first - 1), preset(`Skip to the end (#${formatCount(last)})`, last)),
      ],
      confirmLabel: "Move cursor",
      describe: (error) => describeError(`Could not move ${consumer.name}`, error),
      onConfirm: async () => {
        const acked = Number(input.value);
        if (!input.value || !Number.isInteger(acked) || acked < 0) throw new InputProblem("enter a whole sequence number, 0 or more");
        await moveConsumer(subject, consumer.name, acked);
      },
    });
    if (moved) {
      notice.show(`${consumer.name} moved: it has now acknowledged up to #${formatCount(Number(input.value))}.`);
      refresh.now();
    }
  }

  async function remove(consumer) {
    const removed = await openDialog({
      title: `Delete ${consumer.name}?`,
      body: h(
        "p",
        {},
        `Its position (#${formatCount(consumer.acked)}) is forgotten${consumer.connected ? ", and the connection subscribed as it now is told and stops receiving" : ""}. A subscriber that uses the name again starts a new consumer.`,
      ),
      confirmLabel: "Delete consumer",
      danger: true,
      describe: (error) => describeError(`Could not delete ${consumer.name}`, error),
      onConfirm: () => deleteConsumer(subject, consumer.name),
    });
    if (removed) {
      notice.show(`${consumer.name} was deleted.`);
      refresh.now();
    }
  }

  refresh.now();
  return { unmount: refresh.stop };
}
