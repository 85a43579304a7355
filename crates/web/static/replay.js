// Starts the vendored asciinema player on an SSH recording page. A file of its own, not an
// inline script: that page's policy lets scripts come from rampart itself only.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var el = document.getElementById("player");
  if (!el || !window.AsciinemaPlayer) {
    return;
  }
  window.rampartPlayer = window.AsciinemaPlayer.create(el.dataset.cast, el, {
    fit: "width",
    idleTimeLimit: 2,
    preload: true,
  });
  el.dataset.started = "yes";
});
