// Every page's header (templates/base.html): the theme switch (remembered in localStorage as
// kuwa.theme, else the system's), the language (the kuwa_lang cookie the server reads) and,
// on a phone, the menu that holds the navigation. A plain script: no module, no build.
(function () {
  "use strict";
  var THEME_KEY = "kuwa.theme";
  var dark = window.matchMedia("(prefers-color-scheme: dark)");

  function stored() {
    try {
      var v = localStorage.getItem(THEME_KEY);
      return v === "light" || v === "dark" ? v : null;
    } catch (e) {
      return null;
    }
  }

  function current() {
    return stored() || (dark.matches ? "dark" : "light");
  }

  /** Show the theme: the page, highlight.js's style sheets, the switch's label and icon. */
  function apply() {
    var theme = current();
    document.documentElement.setAttribute("data-theme", theme);
    var light = document.getElementById("hljs-light");
    var darkSheet = document.getElementById("hljs-dark");
    if (light) light.media = theme === "light" ? "all" : "not all";
    if (darkSheet) darkSheet.media = theme === "dark" ? "all" : "not all";
    var button = document.querySelector('[data-testid="theme"]');
    if (button) {
      var label = theme === "dark" ? button.dataset.labelLight : button.dataset.labelDark;
      button.setAttribute("aria-label", label);
      button.title = label;
      button.setAttribute("aria-pressed", String(theme === "dark"));
    }
  }

  function setup() {
    apply();
    var theme = document.querySelector('[data-testid="theme"]');
    if (theme) {
      theme.addEventListener("click", function () {
        try {
          localStorage.setItem(THEME_KEY, current() === "dark" ? "light" : "dark");
        } catch (e) {}
        apply();
      });
    }
    dark.addEventListener("change", function () {
      if (!stored()) apply();
    });
    var lang = document.querySelector('[data-testid="lang"]');
    if (lang) {
      lang.addEventListener("change", function () {
        var secure = location.protocol === "https:" ? "; secure" : "";
        document.cookie = "kuwa_lang=" + encodeURIComponent(lang.value) +
          "; path=/; max-age=31536000; samesite=lax" + secure;
        location.reload();
      });
    }
    var toggle = document.querySelector('[data-testid="nav-toggle"]');
    var header = document.querySelector("header.top");
    if (toggle && header) {
      var close = function () {
        header.classList.remove("nav-open");
        toggle.setAttribute("aria-expanded", "false");
      };
      toggle.addEventListener("click", function (e) {
        e.stopPropagation();
        var open = !header.classList.contains("nav-open");
        header.classList.toggle("nav-open", open);
        toggle.setAttribute("aria-expanded", String(open));
      });
      document.addEventListener("click", function (e) {
        if (!header.contains(e.target)) close();
      });
      document.addEventListener("keydown", function (e) {
        if (e.key === "Escape") close();
      });
      header.addEventListener("click", function (e) {
        if (e.target.closest && e.target.closest("nav a")) close();
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
