// keepword dashboard: live updates over Server-Sent Events, and j/k/Enter.
// No inline script anywhere (the Content-Security-Policy forbids it); this
// file is all the JavaScript the dashboard has.
(function () {
  "use strict";
  var main = document.getElementById("content");
  var heard = document.getElementById("heard");

  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr[data-href]")); }
  var selectedId = null;
  function select(i) {
    var r = rows();
    if (!r.length) return;
    i = Math.max(0, Math.min(r.length - 1, i));
    r.forEach(function (x) { x.classList.remove("selected"); x.removeAttribute("aria-selected"); });
    r[i].classList.add("selected");
    r[i].setAttribute("aria-selected", "true");
    selectedId = r[i].getAttribute("data-id");
    r[i].scrollIntoView({ block: "nearest" });
  }
  function current() {
    var r = rows();
    for (var i = 0; i < r.length; i++) if (r[i].getAttribute("data-id") === selectedId) return i;
    return -1;
  }
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
    if (e.key === "j") { select(current() + 1); e.preventDefault(); }
    else if (e.key === "k") { select(current() < 0 ? 0 : current() - 1); e.preventDefault(); }
    else if (e.key === "Enter" && t === document.body || e.key === "Enter" && t && t.tagName === "TR") {
      var i = current();
      if (i >= 0) { window.location.href = rows()[i].getAttribute("data-href"); e.preventDefault(); }
    }
  });
  document.addEventListener("click", function (e) {
    var tr = e.target.closest && e.target.closest("tr[data-href]");
    if (tr && !e.target.closest("a, button, form")) { window.location.href = tr.getAttribute("data-href"); }
  });

  if (!main || !heard || !window.EventSource) return;
  var url = main.getAttribute("data-live-url");
  var watch = (main.getAttribute("data-live-ids") || "*").split(",");
  var streamUrl = heard.getAttribute("data-stream");
  var pending = null, inflight = false, again = false;

  function time(d) { return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }); }
  function said(text, lost) { heard.textContent = text; heard.classList.toggle("lost", !!lost); }

  function refresh() {
    if (inflight) { again = true; return; }
    inflight = true;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } }).then(function (res) {
      if (res.status === 401 || res.redirected) { window.location.reload(); return null; }
      return res.ok ? res.text() : null;
    }).then(function (html) {
      if (html === null || html === undefined) return;
      var target = document.getElementById(main.getAttribute("data-live-target") || (document.getElementById("queue") ? "queue" : "conversation"));
      if (!target) return;
      var open = {};
      target.querySelectorAll("details[data-key]").forEach(function (d) { open[d.getAttribute("data-key")] = d.open; });
      target.innerHTML = html;
      if (selectedId !== null) { var i = current(); if (i >= 0) select(i); }
      document.body.setAttribute("data-updated", String(Date.now()));
    }).catch(function () {}).then(function () {
      inflight = false;
      if (again) { again = false; refresh(); }
    });
  }
  function changed(ids) {
    if (watch[0] !== "*" && ids.length && !ids.some(function (id) { return watch.indexOf(String(id)) >= 0; })) return;
    if (pending) return;
    // Commits come in bursts: one refetch for a burst.
    pending = setTimeout(function () { pending = null; refresh(); }, 150);
  }
  var es = null;
  function connect() {
    es = new EventSource(streamUrl);
    es.addEventListener("hello", function () { said("Live · last heard from the server at " + time(new Date())); });
    es.addEventListener("tick", function () { said("Live · last heard from the server at " + time(new Date())); });
    es.addEventListener("change", function (e) {
      said("Live · last heard from the server at " + time(new Date()));
      var ids = [];
      try { ids = JSON.parse(e.data).ids || []; } catch (x) { ids = []; }
      changed(ids);
    });
    es.onerror = function () {
      said("Connection to the server lost at " + time(new Date()) + " · reconnecting…", true);
      // EventSource retries by itself; after a drop, catch up once it is back.
      es.addEventListener("hello", function () { changed([]); }, { once: true });
    };
  }
  connect();
})();
