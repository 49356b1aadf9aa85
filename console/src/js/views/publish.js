// The publish form: JSON checked before it is sent (the server's strict rules, json.js), sent
// as written with POST /v1/stream/{subject}, optionally as a batch and with an idempotency key.

import { publish } from "../api.js";
import { banner, h, replaceChildren } from "../dom.js";
import { describeError } from "../errors.js";
import { formatCount } from "../format.js";
import { jsonEditor } from "../json-editor.js";
import { subjectHref } from "./subject-opener.js";

export function publishPanel(host, context) {
  const { subject } = context;
  const batch = h("input", { id: "publish-batch", type: "checkbox" });
  const editor = jsonEditor({
    id: "publish-data",
    label: "Message (JSON)",
    text: '{\n  "hello": "world"\n}',
    check: (node) => (batch.checked && (node.kind !== "array" || !node.items.length) ? "A batch is a non-empty JSON array (each item becomes one message): make it one, or untick Batch." : null),
  });
  const msgId = h("input", { id: "publish-msgid", autocomplete: "off", spellcheck: "false", maxlength: "256", "aria-describedby": "publish-msgid-help" });
  const send = h("button", { type: "submit", class: "button primary" }, "Publish");
  const problem = banner();
  const result = h("p", { class: "result", role: "status" });
  const form = h(
    "form",
    { class: "card form publish-form", novalidate: true },
    editor.element,
    h("div", { class: "check" }, batch, h("label", { for: "publish-batch" }, "Batch: each item of the array is a message (one atomic commit)")),
    h(
      "div",
      { class: "field" },
      h("label", { for: "publish-msgid" }, "Idempotency key (optional)"),
      msgId,
      h("p", { id: "publish-msgid-help", class: "hint" }, "The same key again within the dedup window stores nothing and answers the original sequence."),
    ),
    problem.element,
    h("div", { class: "form-actions" }, send, h("span", { class: "hint" }, "Ctrl+Enter publishes"), result),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replaceChildren(result);
    problem.clear();
    if (!editor.read()) return editor.focus();
    send.disabled = true;
    try {
      const answer = await publish(subject, editor.textarea.value, { msgId: msgId.value.trim(), batch: batch.checked });
      const range = answer.last && answer.last !== answer.seq ? `#${formatCount(answer.seq)}–#${formatCount(answer.last)}` : `#${formatCount(answer.seq)}`;
      replaceChildren(
        result,
        answer.duplicate ? `Already stored as ${range} (same idempotency key): nothing new was stored. ` : `Stored as ${range}. `,
        h("a", { href: `${subjectHref(subject, "messages")}?upto=${answer.last ?? answer.seq}` }, "See it in Messages"),
      );
      context.refreshInfo();
    } catch (error) {
      problem.show(describeError(`Could not publish to ${subject}`, error));
    } finally {
      send.disabled = false;
    }
  });

  host.append(form);
  return { unmount() {} };
}
