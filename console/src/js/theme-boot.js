// Runs before the first paint: applies the theme chosen with the toggle, if any (otherwise
// the stylesheet follows prefers-color-scheme).
try {
  const theme = localStorage.getItem("dstream-console.theme");
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
} catch {}
