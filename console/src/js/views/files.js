// Files in R2 (/v1/files): browse by prefix ("folders" are the prefixes up to a "/"), upload
// with progress (button or drag and drop), download, delete.

import { deleteFile, downloadFile, listFiles, uploadFile } from "../api.js";
import { openDialog } from "../dialog.js";
import { banner, h, replaceChildren } from "../dom.js";
import { describeError } from "../errors.js";
import { formatBytes, formatTime } from "../format.js";

const filesHref = (prefix) => (prefix ? `#/files?prefix=${encodeURIComponent(prefix)}` : "#/files");
const lastSegment = (key) => key.replace(/\/$/, "").split("/").pop();

/** "All files / docs / sub", each level a link but the current one; nothing at the top. */
function breadcrumb(prefix) {
  const parts = prefix.split("/").filter(Boolean);
  if (!parts.length) return null;
  return h(
    "nav",
    { class: "breadcrumb", "aria-label": "Folder" },
    h("a", { href: filesHref("") }, "All files"),
    parts.map((part, i) => [h("span", { "aria-hidden": "true" }, "/"), i === parts.length - 1 ? h("span", { "aria-current": "page" }, part) : h("a", { href: filesHref(`${parts.slice(0, i + 1).join("/")}/`) }, part)]),
  );
}

/** Saves a Blob under a file name through a temporary link (the download needs the
 *  Authorization header, so a plain link to the file cannot do it). */
function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function filesView(main, { query }) {
  document.title = "Files · durable-stream console";
  let prefix = query.get("prefix") ?? "";
  let cursor = null;
  const problem = banner();
  const notice = banner("info");
  const crumbs = h("div", { class: "crumbs" });
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "data responsive files-table" },
    h("caption", { class: "visually-hidden" }, "Folders and files under the current prefix"),
    h("thead", {}, h("tr", {}, ["Name", "Size", "Type", "Uploaded", "Actions"].map((label, i) => h("th", { scope: "col", class: i === 1 || i === 4 ? "numeric" : "" }, label)))),
    tbody,
  );
  const empty = h("p", { class: "empty muted", hidden: true });
  const more = h("button", { type: "button", class: "button", hidden: true, onclick: () => load(true) }, "Show more");
  const uploads = h("ul", { class: "uploads", "aria-label": "Uploads" });
  const picker = h("input", { type: "file", multiple: true, id: "upload-input", class: "file-input", tabindex: "-1" });
  const pick = h("button", { type: "button", class: "button primary" }, "Upload files…");
  const dropzone = h("div", { class: "dropzone" }, pick, h("span", { class: "muted" }, "or drop files here"), picker);
  const goto = h("input", { id: "files-prefix", value: prefix, placeholder: "reports/2026/", autocomplete: "off", spellcheck: "false", "data-shortcut-filter": true });
  const gotoForm = h("form", { class: "field wide" }, h("label", { for: "files-prefix" }, "Prefix"), h("div", { class: "input-row" }, goto, h("button", { type: "submit", class: "button" }, "Go")));

  main.append(
    h(
      "section",
      { class: "page" },
      crumbs,
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Files")),
      h("div", { class: "toolbar" }, gotoForm, dropzone),
      uploads,
      notice.element,
      problem.element,
      h("div", { class: "table-wrap" }, table),
      empty,
      h("div", { class: "table-foot" }, more),
    ),
  );

  gotoForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const target = filesHref(goto.value.trim());
    // The same prefix again lists it again (the hash does not change, so no route change).
    if (location.hash === target) load();
    else location.hash = target;
  });
  pick.addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => {
    uploadAll([...picker.files]);
    picker.value = "";
  });
  dropzone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropzone.classList.add("over");
  });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("over");
    uploadAll([...event.dataTransfer.files]);
  });

  function folderRow(folder) {
    return h(
      "tr",
      { class: "folder" },
      h("td", { "data-label": "Name" }, h("a", { href: filesHref(folder) }, `${lastSegment(folder)}/`)),
      h("td", { "data-label": "Size", class: "numeric" }, "—"),
      h("td", { "data-label": "Type" }, "folder"),
      h("td", { "data-label": "Uploaded" }, "—"),
      h("td", { "data-label": "Actions" }),
    );
  }

  function fileRow(file) {
    const name = lastSegment(file.key);
    const download = h("button", { type: "button", class: "button small", "aria-label": `Download ${name}` }, "Download");
    download.addEventListener("click", async () => {
      download.disabled = true;
      try {
        const blob = await downloadFile(file.key, { onProgress: (got, total) => (download.textContent = total ? `${Math.floor((got / total) * 100)} %` : formatBytes(got)) });
        saveBlob(blob, name);
      } catch (error) {
        problem.show(describeError(`Could not download ${file.key}`, error));
      } finally {
        download.disabled = false;
        download.textContent = "Download";
      }
    });
    const remove = h("button", { type: "button", class: "button small danger-ghost", "aria-label": `Delete ${name}` }, "Delete…");
    remove.addEventListener("click", async () => {
      const deleted = await openDialog({
        title: `Delete ${name}?`,
        body: h("p", {}, `${file.key} (${formatBytes(file.size)}) is deleted from the bucket for good.`),
        confirmLabel: "Delete file",
        danger: true,
        describe: (error) => describeError(`Could not delete ${file.key}`, error),
        onConfirm: () => deleteFile(file.key),
      });
      if (deleted) {
        notice.show(`Deleted ${file.key}.`);
        load();
      }
    });
    return h(
      "tr",
      { "data-key": file.key },
      h("td", { "data-label": "Name", class: "name" }, name),
      h("td", { "data-label": "Size", class: "numeric" }, formatBytes(file.size)),
      h("td", { "data-label": "Type" }, file.contentType),
      h("td", { "data-label": "Uploaded" }, formatTime(Date.parse(file.uploaded))),
      h("td", { "data-label": "Actions", class: "actions" }, h("span", { class: "cell-row" }, download, remove)),
    );
  }

  /** Lists the prefix (from the start, or `more` from the cursor). */
  async function load(more = false) {
    replaceChildren(crumbs, breadcrumb(prefix));
    try {
      const page = await listFiles({ prefix, cursor: more ? cursor : null });
      problem.clear();
      cursor = page.truncated ? page.cursor : null;
      const rows = [...page.prefixes.map(folderRow), ...page.objects.map(fileRow)];
      if (more) tbody.append(...rows);
      else replaceChildren(tbody, rows);
    } catch (error) {
      problem.show(describeError(`Could not list the files under "${prefix}"`, error));
    }
    showListState();
  }

  function showListState() {
    more.hidden = !cursor;
    table.hidden = !tbody.children.length;
    empty.hidden = !!tbody.children.length;
    empty.textContent = prefix ? `Nothing under “${prefix}”. Upload files to create it.` : "No files yet. Upload some.";
  }

  function uploadAll(files) {
    for (const file of files) upload(file);
  }

  async function upload(file) {
    const key = `${prefix}${file.name}`;
    const progress = h("progress", { max: "100", value: "0", "aria-label": `Uploading ${key}` });
    const percent = h("span", { class: "muted" }, "0 %");
    const controller = new AbortController();
    const cancel = h("button", { type: "button", class: "button small ghost" }, "Cancel");
    // Cancels while the upload runs; once it failed, dismisses its line.
    cancel.addEventListener("click", () => (item.classList.contains("failed") ? item.remove() : controller.abort()));
    const item = h("li", { class: "upload" }, h("span", { class: "name" }, key), progress, percent, cancel);
    uploads.append(item);
    try {
      await uploadFile(key, file, {
        signal: controller.signal,
        onProgress: (sent, total) => {
          progress.value = total ? (sent / total) * 100 : 0;
          percent.textContent = `${Math.floor(progress.value)} %`;
        },
      });
      notice.show(`Uploaded ${key} (${formatBytes(file.size)}).`);
      item.remove();
      load();
    } catch (error) {
      item.classList.add("failed");
      percent.textContent = describeError(`Could not upload ${key}`, error);
      cancel.textContent = "Dismiss";
    }
  }

  load();
  return {
    update({ query: next }) {
      prefix = next.get("prefix") ?? "";
      goto.value = prefix;
      notice.clear();
      load();
    },
    unmount() {},
  };
}
