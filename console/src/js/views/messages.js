// The message browser: a page of messages by sequence, newest first, with paging and a jump to
// any sequence. The page is the range ending at `upto` (the hash's ?upto=, default the newest).

import { readMessages } from "../api.js";
import { banner, h, replaceChildren } from "../dom.js";
import { describeError } from "../errors.js";
import { formatCount } from "../format.js";
import { member, parseJson, toValue } from "../json.js";
import { messageCard, messagesOf } from "../message-card.js";
import { subjectHref } from "./subject-opener.js";

const PAGE_SIZE = 20;

/** Messages from..=upto, oldest first. A page of the HTTP API is also bounded by bytes, so this
 *  asks again from `next` until the range is covered. */
async function readRange(subject, from, upto) {
  const messages = [];
  let next = from;
  while (next <= upto) {
    const page = parseJson(await readMessages(subject, { from: next, limit: upto - next + 1 }));
    const got = messagesOf(page);
    messages.push(...got.filter((m) => m.seq <= upto));
    if (!got.length) break;
    next = toValue(member(page, "next"));
  }
  return messages;
}

export function messagesPanel(host, context, query) {
  const { subject } = context;
  const problem = banner();
  const list = h("div", { class: "messages", "aria-live": "off" });
  const position = h("p", { class: "muted" });
  const link = (label, upto, disabled) =>
    disabled
      ? h("span", { class: "button disabled", "aria-disabled": "true" }, label)
      : h("a", { class: "button", href: `${subjectHref(subject, "messages")}${upto == null ? "" : `?upto=${upto}`}` }, label);
  const pager = h("nav", { class: "pager", "aria-label": "Message pages" });
  const jump = h("input", { id: "jump-seq", type: "number", min: "1", inputmode: "numeric", placeholder: "seq" });
  const jumpForm = h(
    "form",
    { class: "field inline" },
    h("label", { for: "jump-seq" }, "Go to sequence"),
    h("div", { class: "input-row" }, jump, h("button", { type: "submit", class: "button" }, "Go")),
  );
  jumpForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (jump.value) location.hash = `${subjectHref(subject, "messages")}?upto=${Number(jump.value)}`;
  });
  host.append(h("div", { class: "toolbar" }, pager, jumpForm), problem.element, position, list);

  let generation = 0;
  async function show(upto) {
    const mine = ++generation;
    list.setAttribute("aria-busy", "true");
    try {
      const info = await context.refreshInfo();
      if (!info) return;
      const newest = info.last;
      const end = Math.min(upto ?? newest, newest);
      const start = Math.max(info.first, end - PAGE_SIZE + 1);
      const messages = start <= end ? await readRange(subject, start, end) : [];
      if (mine !== generation) return;
      problem.clear();
      replaceChildren(pager, link("Newest", null, end >= newest), link("Newer", Math.min(newest, end + PAGE_SIZE), end >= newest), link("Older", start - 1, start <= info.first));
      position.textContent = messages.length
        ? `#${formatCount(messages[0].seq)}–#${formatCount(messages.at(-1).seq)}, newest first · the subject holds #${formatCount(info.first)}–#${formatCount(newest)}`
        : info.last
          ? `No messages here: the subject holds #${formatCount(info.first)}–#${formatCount(newest)} (older ones were trimmed).`
          : "No messages yet: publish one from the Publish tab.";
      replaceChildren(list, messages.reverse().map(messageCard));
    } catch (error) {
      if (mine === generation) problem.show(describeError(`Could not read the messages of ${subject}`, error));
    } finally {
      if (mine === generation) list.removeAttribute("aria-busy");
    }
  }

  const uptoOf = (q) => (q?.get("upto") ? Number(q.get("upto")) : null);
  show(uptoOf(query));
  return {
    update: (next) => show(uptoOf(next)),
    unmount() {
      generation++;
    },
  };
}
