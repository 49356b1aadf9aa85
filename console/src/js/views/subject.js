// A subject's page: its numbers (GET /v1/stream/{subject}, refreshed every few seconds) and a
// tab per task. Switching tabs keeps the page and swaps the panel only.

import { subjectInfo } from "../api.js";
import { banner, h } from "../dom.js";
import { describeError } from "../errors.js";
import { formatBytes, formatCount } from "../format.js";
import { poller } from "../poll.js";
import { consumersPanel } from "./consumers.js";
import { messagesPanel } from "./messages.js";
import { publishPanel } from "./publish.js";
import { statePanel } from "./state.js";
import { subjectHref } from "./subject-opener.js";
import { tailPanel } from "./tail.js";

const INFO_POLL_MS = 3_000;

const TABS = [
  { key: "messages", label: "Messages", panel: messagesPanel },
  { key: "tail", label: "Live tail", panel: tailPanel },
  { key: "publish", label: "Publish", panel: publishPanel },
  { key: "consumers", label: "Consumers", panel: consumersPanel },
  { key: "state", label: "State", panel: statePanel },
];

const STATS = [
  { key: "count", label: "Messages", show: (i) => formatCount(i.count) },
  { key: "range", label: "Sequences", show: (i) => (i.count ? `${formatCount(i.first)}–${formatCount(i.last)}` : `none (last ${formatCount(i.last)})`) },
  { key: "bytes", label: "Size", show: (i) => formatBytes(i.bytes) },
  { key: "connections", label: "Connections", show: (i) => formatCount(i.connections) },
  { key: "subscribers", label: "Subscribers", show: (i) => formatCount(i.subscribers) },
  { key: "consumers", label: "Consumers", show: (i) => formatCount(i.consumers) },
];

export function subjectView(main, { subject, tab, query }) {
  document.title = `${subject} · durable-stream console`;
  const problem = banner();
  const values = Object.fromEntries(STATS.map((stat) => [stat.key, h("dd", {}, "…")]));
  const epoch = h("span", { class: "muted epoch" });
  const tabLinks = TABS.map((t) => h("a", { href: subjectHref(subject, t.key), class: "tab", "data-tab": t.key }, t.label));
  const panelHost = h("div", { class: "panel", id: "subject-panel" });
  let info = null;
  let panel = null;
  let currentTab = null;

  main.append(
    h(
      "section",
      { class: "page" },
      h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("a", { href: "#/subjects" }, "Subjects"), h("span", { "aria-hidden": "true" }, "/"), h("span", { "aria-current": "page" }, subject)),
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1", class: "subject-name" }, subject), epoch),
      h("dl", { class: "stats" }, STATS.map((stat) => h("div", { class: "stat" }, h("dt", {}, stat.label), values[stat.key]))),
      problem.element,
      h("nav", { class: "tabs", "aria-label": `${subject} views` }, tabLinks),
      panelHost,
    ),
  );

  const infoPoll = poller(async () => {
    try {
      info = await subjectInfo(subject);
      for (const stat of STATS) values[stat.key].textContent = stat.show(info);
      epoch.textContent = `epoch ${info.epoch}`;
      problem.clear();
    } catch (error) {
      problem.show(describeError(`Could not read ${subject}`, error));
    }
    return info;
  }, INFO_POLL_MS);

  /** What every panel gets: the subject, its newest numbers, and a way to refresh them. */
  const context = {
    subject,
    info: () => info,
    /** Reads the numbers now (after a panel changed something); resolves to them. */
    refreshInfo: infoPoll.now,
  };

  function showTab(key, panelQuery) {
    const chosen = TABS.find((t) => t.key === key) ?? TABS[0];
    for (const link of tabLinks) {
      if (link.dataset.tab === chosen.key) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (chosen.key === currentTab && panel.update) return panel.update(panelQuery);
    panel?.unmount();
    panelHost.replaceChildren();
    currentTab = chosen.key;
    panel = chosen.panel(panelHost, context, panelQuery);
  }

  infoPoll.now();
  showTab(tab, query);
  return {
    update(params) {
      showTab(params.tab, params.query);
    },
    unmount() {
      infoPoll.stop();
      panel?.unmount();
    },
  };
}
