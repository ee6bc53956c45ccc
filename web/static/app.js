// topics web: the page's one script. It polls /live.json every few seconds and, when items arrived,
// a recluster finished or someone curated, fetches this same page again and swaps its <main> in, so
// the page shows what changed without a reload. Nothing else runs; every page works without it.
(function () {
  "use strict";
  var seconds = Number(document.body.getAttribute("data-live-poll")) || 3;
  var shown = null;
  var badge = document.getElementById("live");

  function stamp(live) {
    return [live.items, live.pending, live.run_id, live.curation].join("|");
  }

  function busy() {
    // never replace a form someone is filling in
    var el = document.activeElement;
    if (el && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName) && el.type !== "submit") return true;
    var fields = document.querySelectorAll("main input[type=text], main input[type=file]");
    for (var i = 0; i < fields.length; i++) if (fields[i].value) return true;
    return false;
  }

  function refresh() {
    return fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main) main.replaceWith(document.importNode(fresh, true));
      });
  }

  function poll() {
    fetch("/live.json", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (live) {
        if (!live) return null;
        if (badge) badge.textContent = live.items + " items" + (live.pending ? ", " + live.pending + " pending" : "");
        var now = stamp(live);
        if (shown === null) { shown = now; return null; }
        if (now === shown || busy()) return null;
        shown = now;
        return refresh();
      })
      .catch(function () { /* the server restarts: try again next time */ })
      .then(function () { window.setTimeout(poll, seconds * 1000); });
  }

  poll();
})();
