// live.js: the one script of the order flow's pages. It only refreshes
// what changes on its own: every element with a data-live-url attribute is
// replaced, every data-live-every milliseconds, by the fragment the server
// renders at that URL (HTML the server built and escaped; scripts in it
// never run). A fragment without data-live-url is final: refreshing stops.
// Without JavaScript the pages work the same, a reload shows the news.
(function () {
  "use strict";

  function schedule(element) {
    var every = parseInt(element.getAttribute("data-live-every") || "1000", 10);
    window.setTimeout(function () { refresh(element); }, Math.max(250, every));
  }

  function refresh(element) {
    var url = element.getAttribute("data-live-url");
    if (!url) { return; }
    fetch(url, { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var template = document.createElement("template");
        template.innerHTML = html.trim();
        var fresh = template.content.firstElementChild;
        if (!fresh) { throw new Error("empty fragment"); }
        element.replaceWith(fresh);
        document.body.setAttribute("data-live-updates",
          String(parseInt(document.body.getAttribute("data-live-updates") || "0", 10) + 1));
        if (fresh.hasAttribute("data-live-url")) { schedule(fresh); }
      })
      .catch(function () {
        element.classList.add("stale");
        schedule(element);
      });
  }

  function start() {
    var elements = document.querySelectorAll("[data-live-url]");
    for (var i = 0; i < elements.length; i++) { schedule(elements[i]); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
