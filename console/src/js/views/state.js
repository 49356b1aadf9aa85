// The subject's state document and its version. Edits are compare-and-set (PUT with If-Match
// on the version): if someone saved in between, the conflict is shown next to the edit, and
// nothing is overwritten unless the user chooses to build on the newer version.

import { getState, putState } from "../api.js";
import { banner, h, replaceChildren } from "../dom.js";
import { describeError } from "../errors.js";
import { formatJson, parseJson, renderJson } from "../json.js";
import { jsonEditor } from "../json-editor.js";

/** A subject without a state document answers `null` (version 0). */
const isNull = (node) => node.kind === "literal" && node.raw === "null";

const documentView = (text) => {
  const node = parseJson(text);
  return isNull(node) ? h("p", { class: "empty muted" }, "No state document yet. Edit to create it.") : h("pre", { class: "json", tabindex: "0" }, h("code", {}, renderJson(node)));
};

export function statePanel(host, context) {
  const { subject } = context;
  const problem = banner();
  const notice = banner("info");
  const version = h("span", { class: "badge" });
  const body = h("div", { class: "state-body" });
  const edit = h("button", { type: "button", class: "button primary" }, "Edit");
  const reload = h("button", { type: "button", class: "button ghost" }, "Reload");
  host.append(h("div", { class: "toolbar" }, h("h2", { class: "inline" }, "State document"), version, h("div", { class: "toolbar-end" }, edit, reload)), notice.element, problem.element, body);

  let current = null; // { text, version } as last read
  let editing = null; // the editor and the version it edits

  /** Reads the document; resolves to it, or null when it could not be read (said in the banner). */
  async function load() {
    problem.clear();
    try {
      current = await getState(subject);
    } catch (error) {
      problem.show(describeError(`Could not read the state of ${subject}`, error));
      return null;
    }
    version.textContent = `version ${current.version}`;
    if (!editing) replaceChildren(body, documentView(current.text));
    return current;
  }

  function startEditing(text, baseVersion) {
    const editor = jsonEditor({ id: "state-editor", label: `Editing version ${baseVersion}`, text });
    const save = h("button", { type: "submit", class: "button primary" }, `Save as version ${baseVersion + 1}`);
    const cancel = h("button", { type: "button", class: "button ghost" }, "Cancel");
    const conflict = h("div", { class: "conflict", hidden: true, role: "alert" });
    // The conflict goes first: it is what the user must read before anything else.
    const form = h("form", { class: "card form", novalidate: true }, conflict, editor.element, h("div", { class: "form-actions" }, save, cancel, h("span", { class: "hint" }, "Ctrl+Enter saves")));
    editing = { baseVersion };
    edit.disabled = true;
    cancel.addEventListener("click", stopEditing);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!editor.read()) return editor.focus();
      save.disabled = true;
      try {
        const saved = await putState(subject, editor.textarea.value, baseVersion);
        notice.show(`Saved: the state is now version ${saved}.`);
        stopEditing();
      } catch (error) {
        save.disabled = false;
        if (error.status === 412) await showConflict(conflict, editor.textarea.value, baseVersion);
        else problem.show(describeError(`Could not save the state of ${subject}`, error));
      }
    });
    replaceChildren(body, form);
    editor.focus();
  }

  async function showConflict(conflict, mine, baseVersion) {
    const theirs = await load();
    replaceChildren(
      conflict,
      h("h3", {}, "Not saved: the document changed while you were editing"),
      theirs
        ? [
            h("p", {}, `You edited version ${baseVersion}; it is now version ${theirs.version}, shown below. Your text is still in the editor, unchanged.`),
            documentView(theirs.text),
            h(
              "div",
              { class: "form-actions" },
              h("button", { type: "button", class: "button", onclick: () => startEditing(mine, theirs.version) }, `Edit mine on top of version ${theirs.version}`),
              h("button", { type: "button", class: "button ghost", onclick: () => startEditing(formatJson(parseJson(theirs.text)), theirs.version) }, `Discard mine, edit version ${theirs.version}`),
            ),
          ]
        : h("p", {}, `You edited version ${baseVersion}, which is no longer the newest; your text is still in the editor. Reload to see the newer version.`),
    );
    conflict.hidden = false;
    conflict.scrollIntoView({ block: "nearest" });
  }

  function stopEditing() {
    editing = null;
    edit.disabled = false;
    load();
  }

  edit.addEventListener("click", () => {
    if (!current) return;
    notice.clear();
    const node = parseJson(current.text);
    startEditing(isNull(node) ? "{\n  \n}" : formatJson(node), current.version);
  });
  reload.addEventListener("click", () => {
    notice.clear();
    load();
  });

  load();
  return { unmount() {} };
}
