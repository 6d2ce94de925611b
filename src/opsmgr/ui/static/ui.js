// opsmgr's UI: progressive enhancement only. Every page works without this file; with it, regions marked
// data-live="URL" follow the server's event stream of that fragment and replace their content on change.
"use strict";
(function () {
  function follow(region) {
    var url = region.getAttribute("data-live");
    if (!url || !window.EventSource) { return; }
    var source = new EventSource(url);
    source.onmessage = function (event) {
      region.innerHTML = event.data;
      region.setAttribute("data-updated", String(Date.now()));
      region.dispatchEvent(new CustomEvent("live-update", { bubbles: true }));
    };
    source.addEventListener("gone", function (event) {
      region.setAttribute("data-gone", event.data);
      source.close();
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var regions = document.querySelectorAll("[data-live]");
    for (var i = 0; i < regions.length; i++) { follow(regions[i]); }
  });
})();
