// One message as the message browser and the live tail show it: its sequence, when it was
// stored, and its data pretty-printed exactly as stored.

import { h } from "./dom.js";
import { formatAgo, formatTime } from "./format.js";
import { formatJson, member, renderJson, toValue } from "./json.js";

/** The messages of a `msgs` frame or a messages page (a parsed node), as { seq, ts, redelivered, data }. */
export function messagesOf(node) {
  return (member(node, "messages")?.items ?? []).map(readMessage);
}

/** A `msg` frame or a page entry (a parsed node) as { seq, ts, redelivered, data }. */
export function readMessage(node) {
  return {
    seq: toValue(member(node, "seq")),
    ts: toValue(member(node, "ts")),
    redelivered: member(node, "redelivered")?.raw === "true",
    data: member(node, "data"),
  };
}

export function messageCard({ seq, ts, redelivered, data }) {
  const copy = h("button", { type: "button", class: "button small ghost", "aria-label": `Copy message ${seq}` }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(formatJson(data));
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Copy failed: select the text instead";
    }
    setTimeout(() => (copy.textContent = "Copy"), 1500);
  });
  return h(
    "article",
    { class: "message", "aria-label": `Message ${seq}`, "data-seq": seq },
    h(
      "header",
      {},
      h("span", { class: "seq" }, `#${seq}`),
      h("time", { datetime: new Date(ts).toISOString(), title: formatTime(ts) }, formatAgo(ts)),
      redelivered && h("span", { class: "badge warn" }, "redelivered"),
      copy,
    ),
    h("pre", { class: "json", tabindex: "0", "aria-label": `Data of message ${seq}` }, h("code", {}, renderJson(data))),
  );
}
