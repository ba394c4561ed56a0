// Dark or light: the system setting by default, or the user's choice, kept in localStorage.

const KEY = "traceforge-theme";
const ORDER = ["auto", "dark", "light"];

function stored() {
  try {
    return localStorage.getItem(KEY) || "auto";
  } catch {
    return "auto";
  }
}

function apply(choice) {
  const root = document.documentElement;
  if (choice === "auto") root.removeAttribute("data-theme");
  else root.dataset.theme = choice;
  const button = document.getElementById("theme-toggle");
  if (button) {
    const shown = choice === "auto" ? (matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark") : choice;
    button.textContent = shown === "light" ? "☀" : "☾";
    button.title = `theme: ${choice === "auto" ? `system (${shown})` : choice}; click to change`;
    button.setAttribute("aria-label", button.title);
  }
}

export function install() {
  apply(stored());
  document.getElementById("theme-toggle")?.addEventListener("click", () => {
    const next = ORDER[(ORDER.indexOf(stored()) + 1) % ORDER.length];
    try {
      localStorage.setItem(KEY, next);
    } catch { /* private mode: this page only */ }
    apply(next);
  });
  matchMedia("(prefers-color-scheme: light)").addEventListener("change", () => apply(stored()));
}
