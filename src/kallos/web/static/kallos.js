// Kallos dashboard: the page refreshes its own content (no full reload, scroll kept) every
// data-refresh seconds; the button in the header pauses it. Shipped in the package, nothing from the network.
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  var button = document.getElementById("refresh-toggle");
  var paused = window.sessionStorage.getItem("kallos-refresh-paused") === "1";

  function label() {
    if (button) {
      button.textContent = paused ? "auto-refresh paused" : "auto-refresh " + seconds + " s";
      button.setAttribute("aria-pressed", paused ? "true" : "false");
    }
  }

  function refresh() {
    if (paused || document.hidden) { return; }
    var active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "SELECT")) { return; }
    window.fetch(window.location.href, { credentials: "same-origin", headers: { "X-Kallos-Refresh": "1" } })
      .then(function (response) { return response.ok || response.status === 503 ? response.text() : null; })
      .then(function (text) {
        if (!text) { return; }
        var fresh = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        var current = document.querySelector("main");
        if (fresh && current) { current.replaceWith(fresh); }
      })
      .catch(function () { /* the server is restarting or unreachable: keep what is shown */ });
  }

  if (button) {
    button.addEventListener("click", function () {
      paused = !paused;
      window.sessionStorage.setItem("kallos-refresh-paused", paused ? "1" : "0");
      label();
    });
  }
  label();
  window.addEventListener("kallos-refresh", refresh);
  if (seconds > 0) { window.setInterval(refresh, seconds * 1000); }
}());
