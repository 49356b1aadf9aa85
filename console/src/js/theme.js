// The light/dark toggle. Without a choice the page follows prefers-color-scheme; a choice is
// remembered in localStorage (theme-boot.js applies it before the first paint).

const THEME_KEY = "dstream-console.theme";
const systemDark = matchMedia("(prefers-color-scheme: dark)");

const currentTheme = () => document.documentElement.dataset.theme ?? (systemDark.matches ? "dark" : "light");

export function setUpThemeToggle(button) {
  const show = () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    button.setAttribute("aria-label", `Switch to the ${next} theme`);
    button.title = `Switch to the ${next} theme`;
    button.textContent = next === "dark" ? "☾" : "☀";
  };
  button.addEventListener("click", () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem(THEME_KEY, next);
    show();
  });
  systemDark.addEventListener("change", show);
  show();
}
