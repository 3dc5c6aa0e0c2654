// ServerMind console behaviour. Served as a file so the Content-Security-Policy can forbid inline script.
(function () {
  "use strict";
  var inflight = 0;
  function bar() { return document.getElementById("progress"); }
  document.addEventListener("htmx:beforeRequest", function (e) {
    // polling requests do not flash the progress bar
    var t = e.detail && e.detail.requestConfig && e.detail.requestConfig.triggeringEvent;
    if (t && t.type === "every") return;
    inflight++;
    var b = bar(); if (b) b.classList.add("active");
  });
  document.addEventListener("htmx:afterRequest", function () {
    inflight = Math.max(0, inflight - 1);
    var b = bar(); if (b && inflight === 0) b.classList.remove("active");
  });
  document.addEventListener("htmx:sendError", function () {
    var b = bar(); if (b) { b.classList.remove("active"); b.classList.add("failed"); setTimeout(function () { b.classList.remove("failed"); }, 3000); }
  });
  // Click on a token or one-liner selects it for copying.
  document.addEventListener("click", function (e) {
    var el = e.target && e.target.closest && e.target.closest("code.token, pre.oneliner code");
    if (!el) return;
    var r = document.createRange(); r.selectNodeContents(el);
    var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
  });
})();
