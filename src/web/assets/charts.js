// ServerMind's interactive charts (issue #17), drawn with uPlot (served from node_modules, see
// src/web/assets.ts). A panel `#charts.chart-panel[data-src]` (partials/host-charts.html, the
// compare page pages/charts.html) is filled from its columnar JSON (src/web/chart/data.ts), asked
// for at the charts' pixel width. The window lives in the page's URL: ?range=1h (ending now, polled
// while the tab is visible) or ?from=&to= (ms, after a drag zoom); back, forward and reload restore
// it. Double-click returns to the last named range. No inline script or style: the CSP holds.
(function () {
  "use strict";
  var RANGES = { "15m": 9e5, "1h": 36e5, "6h": 216e5, "24h": 864e5, "7d": 6048e5, "30d": 2592e6, "90d": 7776e6 };
  var DEFAULT_RANGE = "1h";
  var HEIGHT = 190;
  var state = null;

  // --- units: percent, bytes with binary prefixes, bytes per second, plain counts
  var BIN = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  function bytes(v, digits) {
    var a = Math.abs(v), k = 0;
    while (a >= 1024 && k < BIN.length - 1) { a /= 1024; k++; }
    var n = v / Math.pow(1024, k);
    return (k === 0 ? String(Math.round(n)) : trim(n.toFixed(digits))) + " " + BIN[k];
  }
  function trim(s) { return s.indexOf(".") < 0 ? s : s.replace(/\.?0+$/, ""); }
  function count(v, digits) {
    var a = Math.abs(v);
    if (a >= 1e9) return trim((v / 1e9).toFixed(digits)) + " G";
    if (a >= 1e6) return trim((v / 1e6).toFixed(digits)) + " M";
    if (a >= 1e4) return trim((v / 1e3).toFixed(digits)) + " k";
    return trim(v.toFixed(a >= 100 ? 0 : 2));
  }
  /** A value in a unit; `axis` for tick labels (shorter). */
  function fmt(unit, v, axis) {
    if (v == null || !isFinite(v)) return "–";
    if (unit === "pct") return trim(v.toFixed(axis ? 0 : 1)) + " %";
    if (unit === "bytes") return bytes(v, axis ? 1 : 2);
    if (unit === "bytes/s") return bytes(v, axis ? 1 : 2) + "/s";
    return count(v, axis ? 1 : 2);
  }
  var UNIT_NAME = { pct: "%", bytes: "bytes", "bytes/s": "bytes/s", count: "" };
  // tick steps on powers of two for bytes, so axes read 256 MiB, 512 MiB, 1 GiB
  var BIN_INCRS = [];
  for (var p = 0; p <= 50; p++) BIN_INCRS.push(Math.pow(2, p));

  function pad2(n) { return (n < 10 ? "0" : "") + n; }
  function when(ms, withDate) {
    var d = new Date(ms);
    var hms = pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds());
    return withDate ? d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + " " + hms : hms;
  }

  /** Time axis labels in 24-hour local time: seconds for short steps, the date for steps of a day and more. */
  function timeTicks(u, splits, axisIdx, space, incr) {
    return splits.map(function (v) {
      var d = new Date(v * 1000);
      var date = pad2(d.getMonth() + 1) + "-" + pad2(d.getDate());
      var hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
      if (incr >= 86400) return date;
      if (incr < 60) return hm + ":" + pad2(d.getSeconds());
      return d.getHours() === 0 && d.getMinutes() === 0 ? date : hm;
    });
  }

  // --- colours from the theme's custom properties (console.css, light and dark)
  function colours() {
    var cs = getComputedStyle(document.documentElement);
    var v = function (n) { return cs.getPropertyValue(n).trim(); };
    return {
      series: [v("--s0"), v("--s1"), v("--s2"), v("--s3"), v("--s4"), v("--s5")],
      ink: v("--ink"), muted: v("--muted"), grid: v("--line-soft"), grey: v("--grey"),
    };
  }

  // --- the window, from and into the URL
  function windowFromUrl(panel) {
    var q = new URLSearchParams(location.search);
    var from = Number(q.get("from")), to = Number(q.get("to"));
    if (q.get("from") && q.get("to") && isFinite(from) && isFinite(to) && to > from) return { range: null, from: Math.round(from), to: Math.round(to) };
    var r = q.get("range");
    return { range: RANGES[r] ? r : RANGES[panel.getAttribute("data-range")] ? panel.getAttribute("data-range") : DEFAULT_RANGE };
  }
  function urlFor(w) {
    var q = new URLSearchParams(location.search);
    q.delete("range"); q.delete("from"); q.delete("to");
    if (w.range) q.set("range", w.range);
    else { q.set("from", String(w.from)); q.set("to", String(w.to)); }
    return location.pathname + "?" + q.toString();
  }

  /** Null holes shorter than the series' gap are joined (undefined to uPlot); longer ones stay gaps (null). */
  function withGaps(t, values, gapMs) {
    var out = values.slice();
    var last = -1;
    for (var i = 0; i < out.length; i++) {
      if (out[i] === null) continue;
      if (last >= 0 && i - last > 1 && t[i] - t[last] <= gapMs) for (var j = last + 1; j < i; j++) out[j] = undefined;
      last = i;
    }
    return out;
  }

  function chartWidth(panel) {
    var box = panel.querySelector(".charts");
    var w = box ? box.clientWidth : 800;
    var cols = Math.max(1, Math.floor((w + 12) / (420 + 12)));
    return Math.max(100, Math.min(4000, Math.floor((w - 12 * (cols - 1)) / cols) - 10));
  }

  function status(text, isError) {
    if (!state) return;
    var s = state.panel.querySelector(".chart-status");
    if (!s) return;
    s.textContent = text;
    s.classList.toggle("error", Boolean(isError));
  }

  function stopTimer() {
    if (state && state.timer) { clearTimeout(state.timer); state.timer = null; }
  }

  function schedule() {
    stopTimer();
    if (!state || !state.w.range || document.hidden) return;
    var every = Math.min(300000, Math.max(10000, RANGES[state.w.range] / 240));
    state.timer = setTimeout(function () { load(true); }, every);
  }

  function load(background) {
    if (!state) return;
    var st = state;
    var w = st.w;
    var width = chartWidth(st.panel);
    var q = w.range ? "range=" + encodeURIComponent(w.range) : "from=" + w.from + "&to=" + w.to;
    var url = st.src + (st.src.indexOf("?") < 0 ? "?" : "&") + q + "&width=" + width;
    if (st.abort) st.abort.abort();
    var ctl = typeof AbortController === "function" ? new AbortController() : null;
    st.abort = ctl;
    var headers = { accept: "application/json" };
    // background polls do not count as activity (the session still times out when idle)
    if (background) headers["x-console-poll"] = "1";
    st.panel.classList.add("loading-data");
    fetch(url, { credentials: "same-origin", headers: headers, signal: ctl ? ctl.signal : undefined })
      .then(function (res) {
        var type = res.headers.get("content-type") || "";
        if (type.indexOf("application/json") < 0) throw new Error(res.redirected ? "Your session has ended: reload the page to sign in again." : "The server answered " + res.status + ".");
        return res.json().then(function (body) {
          if (!res.ok) throw new Error((body && body.error && body.error.message) || "The server answered " + res.status + ".");
          return body;
        });
      })
      .then(function (data) {
        if (state !== st) return;
        st.data = data;
        draw(st, data);
        var span = data.to - data.from;
        status(w.range
          ? "Last " + w.range + ", live: updated " + when(Date.now(), false) + ". Drag across a chart to zoom in; hover for values."
          : "Zoomed to " + when(data.from, span > 864e5) + " – " + when(data.to, true) + ". Double-click a chart to go back to the last range.");
        st.panel.classList.remove("loading-data");
        schedule();
      })
      .catch(function (e) {
        if (e && e.name === "AbortError") return;
        if (state !== st) return;
        st.panel.classList.remove("loading-data");
        status("Charts could not be loaded: " + (e && e.message ? e.message : String(e)), true);
        if (!/session has ended/.test(String(e && e.message))) schedule();
      });
  }

  function sameShape(st, data) {
    if (!st.plots.length || st.plots.length !== data.charts.length) return false;
    for (var i = 0; i < data.charts.length; i++) {
      var p = st.plots[i];
      if (p.id !== data.charts[i].id || p.labels !== data.charts[i].series.map(function (s) { return s.label + "/" + s.host; }).join("|")) return false;
    }
    return true;
  }

  function columns(c) {
    var cols = [c.t.map(function (x) { return x / 1000; })];
    c.series.forEach(function (s) { cols.push(withGaps(c.t, s.values, s.gapMs)); });
    return cols;
  }

  function draw(st, data) {
    var offline = {};
    data.hosts.forEach(function (h) { if (h.state !== "online") offline[h.id] = h.state; });
    if (sameShape(st, data)) {
      st.plots.forEach(function (p, i) {
        p.range = [data.from / 1000, data.to / 1000];
        p.u.setData(columns(data.charts[i]));
      });
      return;
    }
    destroyPlots(st);
    var box = st.panel.querySelector(".charts");
    box.textContent = "";
    if (!data.charts.length) {
      var none = document.createElement("p");
      none.className = "muted";
      none.textContent = "No metrics in this range.";
      box.appendChild(none);
      return;
    }
    var col = colours();
    var width = chartWidth(st.panel);
    data.charts.forEach(function (c) {
      var fig = document.createElement("figure");
      fig.className = "chart-box uchart";
      fig.setAttribute("data-chart", c.id);
      fig.setAttribute("aria-label", c.title);
      var cap = document.createElement("figcaption");
      cap.textContent = c.title + (UNIT_NAME[c.unit] ? " (" + UNIT_NAME[c.unit] + ")" : "");
      fig.appendChild(cap);
      var holder = document.createElement("div");
      fig.appendChild(holder);
      box.appendChild(fig);
      var plot = { id: c.id, labels: c.series.map(function (s) { return s.label + "/" + s.host; }).join("|"), range: [data.from / 1000, data.to / 1000], u: null };
      var series = [{ value: function (u, v) { return v == null ? "–" : when(v * 1000, plot.range[1] - plot.range[0] > 86400); } }];
      c.series.forEach(function (s, i) {
        var off = offline[s.host];
        series.push({
          label: s.label + (off && data.hosts.length > 1 ? " (" + off + ")" : ""),
          stroke: off ? col.grey : col.series[i % col.series.length],
          width: 1.5,
          spanGaps: false,
          value: function (u, v) { return fmt(c.unit, v, false); },
        });
      });
      var opts = {
        width: width,
        height: HEIGHT,
        scales: {
          x: { time: true, range: function () { return plot.range; } },
          // from zero; percentages to 100 (or above, should a value exceed it)
          y: { range: function (u, min, max) { return c.max != null ? [0, Math.max(c.max, max || 0)] : [0, max > 0 ? max * 1.1 : 1]; } },
        },
        series: series,
        axes: [
          { stroke: col.muted, grid: { stroke: col.grid, width: 1 }, ticks: { stroke: col.grid, width: 1 }, values: timeTicks },
          {
            stroke: col.muted, grid: { stroke: col.grid, width: 1 }, ticks: { stroke: col.grid, width: 1 }, size: 72,
            incrs: c.unit === "bytes" || c.unit === "bytes/s" ? BIN_INCRS : undefined,
            values: function (u, splits) { return splits.map(function (v) { return fmt(c.unit, v, true); }); },
          },
        ],
        cursor: {
          drag: { x: true, y: false, setScale: false },
          y: false,
          sync: { key: "servermind-charts" },
          bind: { dblclick: function () { return function () { resetZoom(); return null; }; } },
        },
        legend: { live: true },
        hooks: {
          setSelect: [function (u) {
            var sel = u.select;
            if (sel.width > 3) zoomTo(u.posToVal(sel.left, "x") * 1000, u.posToVal(sel.left + sel.width, "x") * 1000);
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          }],
        },
      };
      plot.u = new uPlot(opts, columns(c), holder);
      fig._uplot = plot.u;
      st.plots.push(plot);
    });
  }

  function destroyPlots(st) {
    st.plots.forEach(function (p) { p.u.destroy(); });
    st.plots = [];
  }

  function markTabs(st) {
    st.panel.setAttribute("data-range", st.w.range || "zoom");
    st.panel.querySelectorAll(".tabs a[data-range]").forEach(function (a) {
      var on = a.getAttribute("data-range") === st.w.range;
      a.classList.toggle("active", on);
      if (on) a.setAttribute("aria-current", "true"); else a.removeAttribute("aria-current");
    });
  }

  function go(w, push) {
    if (!state) return;
    if (w.range) state.lastRange = w.range;
    state.w = w;
    if (push) history.pushState({ servermindCharts: true }, "", urlFor(w));
    markTabs(state);
    stopTimer();
    load(false);
  }

  function zoomTo(a, b) {
    var from = Math.round(Math.min(a, b)), to = Math.round(Math.max(a, b));
    if (to - from < 10000) { var mid = (from + to) / 2; from = Math.round(mid - 5000); to = Math.round(mid + 5000); }
    // the charts' cursors are synced, so every chart reports the one selection: act on it once
    if (state && !state.w.range && Math.abs(state.w.from - from) < 2000 && Math.abs(state.w.to - to) < 2000) return;
    go({ range: null, from: from, to: to }, true);
  }

  function resetZoom() {
    if (!state) return;
    go({ range: state.lastRange || DEFAULT_RANGE }, true);
  }

  function init() {
    var panel = document.querySelector("#charts.chart-panel[data-src]");
    if (state && state.panel === panel) return;
    if (state) { stopTimer(); if (state.abort) state.abort.abort(); destroyPlots(state); state = null; }
    if (!panel || typeof uPlot !== "function") return;
    var w = windowFromUrl(panel);
    state = { panel: panel, src: panel.getAttribute("data-src"), w: w, lastRange: w.range || panel.getAttribute("data-range") || DEFAULT_RANGE, plots: [], timer: null, abort: null, data: null };
    markTabs(state);
    load(false);
  }

  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:load", init);
  if (document.readyState !== "loading") init();

  // the range tabs: change the window in place (the links work without script too)
  document.addEventListener("click", function (e) {
    var a = e.target && e.target.closest && e.target.closest("#charts .tabs a[data-range]");
    if (!a || !state || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    go({ range: a.getAttribute("data-range") }, true);
  });
  window.addEventListener("popstate", function () {
    if (!state || !document.body.contains(state.panel)) return;
    var w = windowFromUrl(state.panel);
    state.w = w;
    if (w.range) state.lastRange = w.range;
    markTabs(state);
    stopTimer();
    load(false);
  });
  // live refresh pauses while the tab is hidden and catches up when it shows again
  document.addEventListener("visibilitychange", function () {
    if (!state) return;
    if (document.hidden) stopTimer();
    else if (state.w.range) load(true);
  });
  // the theme changed (the select, or the system's preference): redraw in its colours
  function redraw() {
    setTimeout(function () {
      if (!state || !state.data) return;
      destroyPlots(state);
      draw(state, state.data);
    }, 0);
  }
  document.addEventListener("change", function (e) { if (e.target && e.target.id === "theme-select") redraw(); });
  if (window.matchMedia) {
    var mq = window.matchMedia("(prefers-color-scheme: dark)");
    if (mq.addEventListener) mq.addEventListener("change", redraw);
  }
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      if (!state) return;
      var width = chartWidth(state.panel);
      state.plots.forEach(function (p) { p.u.setSize({ width: width, height: HEIGHT }); });
    }, 150);
  });
  // the compare page's host picker: a filter over the list
  document.addEventListener("input", function (e) {
    var box = e.target;
    if (!box || !box.classList || !box.classList.contains("picker-filter")) return;
    var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    var list = box.parentNode.querySelector(".picker-list");
    if (!list) return;
    list.querySelectorAll(".picker-item").forEach(function (l) {
      var text = (l.getAttribute("data-text") || "").toLowerCase();
      l.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
    });
  });
})();
