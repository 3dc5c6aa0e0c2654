// ServerMind console behaviour. Served as a file so the Content-Security-Policy can forbid inline script.
(function () {
  "use strict";
  // Colour theme (issue #17): "light", "dark" or (nothing stored) the system's preference, kept in
  // localStorage across pages. It is set on <html data-theme> before the body is drawn (this file is
  // loaded without defer); console.css holds both themes as custom properties.
  var THEME_KEY = "servermind.theme";
  function storedTheme() {
    try { var t = localStorage.getItem(THEME_KEY); return t === "light" || t === "dark" ? t : "system"; } catch (_) { return "system"; }
  }
  function applyTheme(t) {
    if (t === "light" || t === "dark") document.documentElement.setAttribute("data-theme", t);
    else document.documentElement.removeAttribute("data-theme");
    var sel = document.getElementById("theme-select");
    if (!sel) return;
    // the markup's default too (not only the value), so a swap that settles attributes keeps it
    for (var i = 0; i < sel.options.length; i++) sel.options[i].defaultSelected = sel.options[i].value === t;
    sel.value = t;
  }
  applyTheme(storedTheme());
  document.addEventListener("DOMContentLoaded", function () { applyTheme(storedTheme()); });
  // new content from htmx (a boosted page replaces the body, and with it the select)
  document.addEventListener("htmx:load", function () { applyTheme(storedTheme()); });
  document.addEventListener("htmx:afterSettle", function () { applyTheme(storedTheme()); });
  document.addEventListener("change", function (e) {
    if (!e.target || e.target.id !== "theme-select") return;
    var t = e.target.value;
    try { if (t === "system") localStorage.removeItem(THEME_KEY); else localStorage.setItem(THEME_KEY, t); } catch (_) { /* storage off: this page only */ }
    applyTheme(t);
  });
  // "/" focuses the page's search box, unless the user is typing in a field.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    var t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    var box = document.querySelector("main input[type=search]");
    if (!box) return;
    e.preventDefault();
    box.focus();
    box.select();
  });
  // The skip link moves focus to the main content (the browser scrolls; focus follows the tabindex).
  document.addEventListener("click", function (e) {
    var a = e.target && e.target.closest && e.target.closest("a.skip-link");
    if (!a) return;
    var main = document.getElementById("main");
    if (!main) return;
    e.preventDefault();
    main.focus();
    main.scrollIntoView();
  });
  // A thin progress bar at the top for every user-started request (not for background polls).
  var active = new Set();
  function bar() { return document.getElementById("progress"); }
  function update() {
    var b = bar();
    if (b) b.classList.toggle("active", active.size > 0);
  }
  document.addEventListener("htmx:beforeRequest", function (e) {
    var cfg = e.detail && e.detail.requestConfig;
    if (cfg && cfg.headers && cfg.headers["X-Console-Poll"]) return;
    active.add(e.detail.xhr);
    update();
  });
  // Pollers marked data-pause-hidden (the log search's live tail) skip their turn while the tab is hidden.
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (document.hidden && e.detail && e.detail.elt && e.detail.elt.hasAttribute && e.detail.elt.hasAttribute("data-pause-hidden")) e.preventDefault();
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    active.delete(e.detail.xhr);
    update();
  });
  document.addEventListener("htmx:sendError", function () {
    var b = bar();
    if (!b) return;
    b.classList.add("failed");
    setTimeout(function () { b.classList.remove("failed"); }, 3000);
  });
  // Click on a token or one-liner selects it for copying.
  document.addEventListener("click", function (e) {
    var el = e.target && e.target.closest && e.target.closest("code.token, pre.oneliner code");
    if (!el) return;
    var r = document.createRange(); r.selectNodeContents(el);
    var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
  });
  // "last seen 25 s ago" and the like stay true while the page is open: every <time class="ago">
  // is rewritten from its datetime every 5 s, in the words the server uses (src/web/format.ts ago).
  function ago(ms) {
    var s = Math.round((Date.now() - ms) / 1000);
    if (s < 0) return "just now";
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }
  function refreshAgo() {
    document.querySelectorAll("time.ago[datetime]").forEach(function (t) {
      var ms = Date.parse(t.getAttribute("datetime"));
      if (!isNaN(ms)) t.textContent = ago(ms);
    });
  }
  setInterval(refreshAgo, 5000);
  document.addEventListener("htmx:afterSettle", refreshAgo);
  // A filter box above a long inventory table (packages, ports, users) hides the rows without its text.
  document.addEventListener("input", function (e) {
    var box = e.target;
    if (!box || !box.classList || !box.classList.contains("table-filter")) return;
    var table = box.nextElementSibling && box.nextElementSibling.querySelector("table");
    if (!table) return;
    var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    table.querySelectorAll("tbody tr").forEach(function (tr) {
      var text = tr.textContent.toLowerCase();
      tr.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
    });
  });
})();
