// opsmgr's UI: progressive enhancement only. Every page works without this file; with it, the regions marked
// data-live="PATH" follow ONE event stream for the whole page (/ui/live?r=PATH&r=PATH...: a browser keeps at
// most six connections to a server, so a stream per region would let two tabs starve a third). A region's
// content is replaced when the server sends its new HTML. The stream is closed while the tab is hidden.
"use strict";
(function () {
  var regions = [];
  var source = null;

  function open() {
    if (source || !regions.length || !window.EventSource) { return; }
    var query = regions.map(function (region) {
      return "r=" + encodeURIComponent(region.getAttribute("data-live"));
    }).join("&");
    source = new EventSource("/ui/live?" + query);
    source.onmessage = function (event) {
      var message = JSON.parse(event.data);
      var region = regions[message.region];
      if (!region) { return; }
      region.innerHTML = message.html;
      region.setAttribute("data-updated", String(Date.now()));
      region.dispatchEvent(new CustomEvent("live-update", { bubbles: true }));
    };
    source.addEventListener("gone", function (event) {
      var message = JSON.parse(event.data);
      var region = regions[message.region];
      if (region) { region.setAttribute("data-gone", message.detail); }
      // Nothing left to follow: do not let the browser reconnect to a stream of refusals.
      if (regions.every(function (r) { return r.hasAttribute("data-gone"); })) { close(); }
    });
  }

  function close() {
    if (source) { source.close(); source = null; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    regions = Array.prototype.slice.call(document.querySelectorAll("[data-live]"), 0, 8);
    if (!document.hidden) { open(); }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { close(); } else { open(); }
  });
})();
