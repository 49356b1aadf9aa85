// Modal dialogs on the native <dialog> element: focus stays inside, Escape cancels, and focus
// returns to what opened it.

import { h } from "./dom.js";

/**
 * Shows a modal with a form: `body` (nodes) and a submit button labelled `confirmLabel`.
 * `onConfirm()` runs on submit; while it runs the buttons are disabled; if it throws, the
 * dialog stays open and shows `describe(error)`. Resolves true when confirmed, false when
 * cancelled.
 */
export function openDialog({ title, body, confirmLabel, danger = false, onConfirm = async () => {}, describe = String }) {
  return new Promise((resolve) => {
    const error = h("p", { class: "form-error", role: "alert" });
    const cancel = h("button", { type: "button", class: "button ghost" }, "Cancel");
    const confirm = h("button", { type: "submit", class: `button ${danger ? "danger" : "primary"}` }, confirmLabel);
    const form = h("form", { method: "dialog" }, h("h2", {}, title), body, error, h("div", { class: "dialog-actions" }, cancel, confirm));
    const dialog = h("dialog", { class: "dialog", "aria-label": title }, form);
    let confirmed = false;
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      confirm.disabled = cancel.disabled = true;
      error.textContent = "";
      try {
        await onConfirm();
        confirmed = true;
        dialog.close();
      } catch (failure) {
        error.textContent = describe(failure);
        confirm.disabled = cancel.disabled = false;
      }
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(confirmed);
    });
    document.body.append(dialog);
    dialog.showModal();
    // A destructive action starts on Cancel, so that Enter does not destroy by accident.
    (danger ? cancel : (form.querySelector("input") ?? confirm)).focus();
  });
}
