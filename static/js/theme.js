/* Follow the system's light or dark setting with Bootstrap 5.3's colour modes. Loaded in <head>,
   before the page is drawn, so a dark system never sees a light flash. */
"use strict";

(() => {
  const dark = window.matchMedia("(prefers-color-scheme: dark)");
  const apply = () => document.documentElement.setAttribute("data-bs-theme", dark.matches ? "dark" : "light");
  apply();
  dark.addEventListener("change", apply);
})();
