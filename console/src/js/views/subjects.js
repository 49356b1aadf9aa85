// The subject directory: every subject with its counts, refreshed every few seconds from
// GET /v1/subjects, sortable, filtered by prefix, with a publish-rate sparkline per subject.

import { listSubjects } from "../api.js";
import { banner, h, replaceChildren } from "../dom.js";
import { describeError } from "../errors.js";
import { poller } from "../poll.js";
import { formatAgo, formatBytes, formatCount, formatRate, formatTime } from "../format.js";
import { drawSparkline, emptySparkline } from "../sparkline.js";
import { subjectLink, subjectOpener } from "./subject-opener.js";

const PAGE_SIZE = 100;
/** Listing requests per refresh beyond one per page, for a token's short pages. */
const MAX_EXTRA_REQUESTS = 4;
const POLL_MS = 2_000;
/** Rate samples kept per subject (one per poll): a minute of history at the poll interval. */
const SAMPLES = 30;
/** Active subjects report to the directory every few seconds; a subject whose newest report is
 *  older than this has not published since, so its rate is 0. */
const IDLE_AFTER_MS = 15_000;

const byNumber = (key) => (a, b) => (a.data[key] ?? -1) - (b.data[key] ?? -1);
const COLUMNS = [
  { key: "subject", label: "Subject", compare: (a, b) => (a.data.subject < b.data.subject ? -1 : 1) },
  { key: "count", label: "Messages", compare: byNumber("count"), show: (d) => formatCount(d.count) },
  { key: "last", label: "Last seq", compare: byNumber("last"), show: (d) => formatCount(d.last) },
  { key: "bytes", label: "Size", compare: byNumber("bytes"), show: (d) => formatBytes(d.bytes) },
  { key: "rate", label: "Publish rate", compare: (a, b) => (a.rate ?? -1) - (b.rate ?? -1) },
  { key: "connections", label: "Connections", compare: byNumber("connections"), show: (d) => formatCount(d.connections) },
  { key: "subscribers", label: "Subscribers", compare: byNumber("subscribers"), show: (d) => formatCount(d.subscribers) },
  { key: "consumers", label: "Consumers", compare: byNumber("consumers"), show: (d) => formatCount(d.consumers) },
  { key: "lastPublishTs", label: "Last publish", compare: byNumber("lastPublishTs"), show: (d) => formatAgo(d.lastPublishTs) },
];

/** One subject's row: its newest directory entry and when the directory got it, its rate
 *  history, and its table cells. */
function createRow(data, reportAt) {
  const cells = Object.fromEntries(COLUMNS.map((column) => [column.key, h("td", { "data-label": column.label, class: column.key === "subject" ? "" : "numeric" })]));
  cells.subject.append(subjectLink(data.subject));
  const spark = emptySparkline();
  const rateText = h("span", { class: "rate-value" });
  cells.rate.append(h("span", { class: "cell-row" }, spark, rateText));
  return { data, reportAt, rate: null, rates: [], fresh: true, spark, rateText, cells, tr: h("tr", {}, Object.values(cells)) };
}

/** Takes a newer entry of the row's subject, with a rate sample: the messages per second
 *  between the subject's previous report and this one. */
function takeEntry(row, data, reportAt, listAsOf) {
  if (row.data.epoch !== data.epoch) {
    row.rates = [];
    row.rate = null;
  } else if (listAsOf - reportAt > IDLE_AFTER_MS) {
    row.rate = 0;
  } else if (reportAt > row.reportAt) {
    row.rate = Math.max(0, ((data.last - row.data.last) * 1000) / (reportAt - row.reportAt));
  }
  if (row.rate != null) row.rates = [...row.rates, row.rate].slice(-SAMPLES);
  Object.assign(row, { data, reportAt });
}

/** Shows the row's numbers; a number that changed since the last poll flashes. */
function updateCells(row) {
  for (const column of COLUMNS.filter((c) => c.show)) {
    const text = column.show(row.data);
    const cell = row.cells[column.key];
    if (cell.textContent === text) continue;
    cell.textContent = text;
    if (!row.fresh) flash(cell);
  }
  row.fresh = false;
  row.cells.lastPublishTs.title = formatTime(row.data.lastPublishTs);
  const rateText = formatRate(row.rate);
  if (row.rateText.textContent !== rateText) row.rateText.textContent = rateText;
  drawSparkline(row.spark, row.rates);
}

function flash(cell) {
  cell.classList.remove("changed");
  void cell.offsetWidth; // restarts the animation
  cell.classList.add("changed");
}

export function subjectsView(main, { query }) {
  document.title = "Subjects · durable-stream console";
  const state = {
    prefix: query.get("prefix") ?? "",
    pages: 1,
    cursor: null,
    asOf: null,
    rows: new Map(),
    sort: { key: "subject", descending: false },
  };
  const problem = banner();
  const summary = h("p", { class: "muted summary", "aria-live": "polite" });
  const filter = h("input", { id: "subject-filter", type: "search", value: state.prefix, placeholder: "orders.", autocomplete: "off", spellcheck: "false", "data-shortcut-filter": true });
  const tbody = h("tbody");
  const headers = COLUMNS.map((column) => sortHeader(column));
  const table = h("table", { class: "data responsive subjects-table" }, h("caption", { class: "visually-hidden" }, "Subjects, with their counts from the subject directory"), h("thead", {}, h("tr", {}, headers)), tbody);
  const empty = h("div", { class: "empty", hidden: true });
  const more = h("button", { type: "button", class: "button", hidden: true, onclick: () => loadMore() }, `Show ${PAGE_SIZE} more`);

  function sortHeader(column) {
    const button = h("button", { type: "button", class: "sort" }, column.label);
    const th = h("th", { scope: "col", class: column.key === "subject" ? "" : "numeric" }, button);
    button.addEventListener("click", () => {
      const same = state.sort.key === column.key;
      // Names read best A→Z; numbers biggest first.
      state.sort = { key: column.key, descending: same ? !state.sort.descending : column.key !== "subject" };
      render();
    });
    return th;
  }

  let filterDelay;
  filter.addEventListener("input", () => {
    clearTimeout(filterDelay);
    filterDelay = setTimeout(() => {
      state.prefix = filter.value.trim();
      history.replaceState(null, "", state.prefix ? `#/subjects?prefix=${encodeURIComponent(state.prefix)}` : "#/subjects");
      state.pages = 1;
      state.rows.clear();
      tbody.replaceChildren();
      refresh.restart();
    }, 250);
  });

  main.append(
    h(
      "section",
      { class: "page" },
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Subjects"), summary),
      h(
        "div",
        { class: "toolbar" },
        h("div", { class: "field" }, h("label", { for: "subject-filter" }, "Filter by prefix"), filter),
        subjectOpener(),
      ),
      problem.element,
      h("div", { class: "table-wrap" }, table),
      empty,
      h("div", { class: "table-foot" }, more),
    ),
  );

  /** The subjects shown so far (state.pages pages' worth). A token's pages may be short, or
   *  empty, while more follow (the Worker drops the subjects it may not see), so this asks
   *  again until the rows are there, within MAX_EXTRA_REQUESTS more requests. */
  async function fetchLoadedPages(signal) {
    const subjects = [];
    let cursor = null;
    let asOf = null;
    for (let requests = 0; requests < state.pages + MAX_EXTRA_REQUESTS; requests++) {
      const answer = await listSubjects({ prefix: state.prefix, limit: PAGE_SIZE, cursor }, { signal });
      subjects.push(...answer.subjects);
      asOf = answer.asOf;
      cursor = answer.cursor;
      if (!cursor || subjects.length >= state.pages * PAGE_SIZE) break;
    }
    return { subjects, cursor, asOf };
  }

  const refresh = poller(async (signal) => {
    try {
      const { subjects, cursor, asOf } = await fetchLoadedPages(signal);
      apply(subjects, asOf);
      state.cursor = cursor;
      problem.clear();
    } catch (error) {
      if (signal.aborted) return;
      problem.show(
        describeError("Could not list the subjects", error, {
          forbidden: "Your token may not list subjects: open one by name instead.",
          not_found: "This server has no subject directory: it is older than this console.",
        }),
      );
    }
    render();
  }, POLL_MS);

  function apply(subjects, asOf) {
    const seen = new Set();
    for (const data of subjects) {
      seen.add(data.subject);
      // Each entry says how fresh it is (asOf); the list's time stands in if it does not.
      const reportAt = data.asOf ?? asOf;
      const row = state.rows.get(data.subject);
      if (row) takeEntry(row, data, reportAt, asOf);
      else state.rows.set(data.subject, createRow(data, reportAt));
    }
    for (const [name, row] of state.rows) {
      if (!seen.has(name)) {
        row.tr.remove();
        state.rows.delete(name);
      }
    }
    state.asOf = asOf;
  }

  function render() {
    const column = COLUMNS.find((c) => c.key === state.sort.key);
    const rows = [...state.rows.values()].sort((a, b) => column.compare(a, b) * (state.sort.descending ? -1 : 1) || (a.data.subject < b.data.subject ? -1 : 1));
    // Reordering moves nodes (and would drop focus): only when the order changed.
    if (rows.some((row, i) => tbody.children[i] !== row.tr)) tbody.append(...rows.map((row) => row.tr));
    rows.forEach(updateCells);
    headers.forEach((th, i) => {
      if (COLUMNS[i].key === state.sort.key) th.setAttribute("aria-sort", state.sort.descending ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
    const count = state.rows.size;
    summary.textContent = state.asOf == null ? "Loading…" : `${formatCount(count)}${state.cursor ? "+" : ""} ${count === 1 ? "subject" : "subjects"} · counts as of ${formatAgo(state.asOf)}, refreshed every ${POLL_MS / 1000} s`;
    more.hidden = !state.cursor;
    table.hidden = count === 0;
    empty.hidden = count > 0 || state.asOf == null;
    replaceChildren(
      empty,
      state.prefix
        ? h("p", {}, `No subject starts with “${state.prefix}”.`)
        : [h("p", {}, "No subjects yet."), h("p", { class: "muted" }, "A subject appears here once something publishes to it: open one by name above and use its Publish tab.")],
    );
  }

  function loadMore() {
    state.pages++;
    refresh.restart();
  }

  refresh.now();
  return {
    update({ query: next }) {
      const prefix = next.get("prefix") ?? "";
      if (prefix === state.prefix) return;
      filter.value = prefix;
      filter.dispatchEvent(new Event("input"));
    },
    unmount() {
      refresh.stop();
      clearTimeout(filterDelay);
    },
  };
}
