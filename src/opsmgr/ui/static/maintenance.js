// Rolling maintenance (pages_maintenance): the live board replaces its content whenever the change moves on;
// a confirmation box the user has ticked (data-keep) stays ticked across those replacements.
"use strict";
(function () {
  var kept = {};
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box && box.matches && box.matches("input[type=checkbox][data-keep]") && box.id) {
      kept[box.id] = box.checked;
    }
  });
  document.addEventListener("live-update", function () {
    Object.keys(kept).forEach(function (id) {
      var box = document.getElementById(id);
      if (box) { box.checked = kept[id]; }
    });
  });
})();
