// ServerMind console behaviour. Served as a file so the Content-Security-Policy can forbid inline script.
(function () {
  "use strict";
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
})();
