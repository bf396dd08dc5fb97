// The console works without this file: it only makes a running conversion job's page update
// itself live (server-sent events) instead of reloading every few seconds.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var live = document.querySelector("[data-progress-events]");
  if (!live || !window.EventSource) return;
  // The page reloads itself as a fallback; with events it need not.
  var refresh = document.querySelector("meta[http-equiv=refresh]");
  if (refresh) refresh.remove();
  var source = new EventSource(live.getAttribute("data-progress-events"));
  source.addEventListener("progress", function (event) {
    var p = JSON.parse(event.data);
    live.querySelectorAll("[data-figure]").forEach(function (el) {
      var key = el.getAttribute("data-figure");
      if (key in p) el.textContent = p[key];
    });
    var bar = live.querySelector("progress");
    if (bar && p.total) { bar.max = p.total; bar.value = p.done; }
    if (p.finished) { source.close(); window.location.reload(); }
  });
  source.onerror = function () { source.close(); setTimeout(function () { window.location.reload(); }, 3000); };
});
