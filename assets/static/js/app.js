// Rassylka's own script: htmx configuration. htmx 2 does not swap 4xx
// answers by default; a 422 carries the re-rendered form with its field
// errors, so it must be swapped like a success.
document.addEventListener("DOMContentLoaded", function () {
  if (!window.htmx) return;
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "422", swap: true },
    { code: "[45]..", swap: false, error: true },
  ];
  document.documentElement.dataset.htmx = "ready";
});

// A new account takes the browser's time zone.
document.addEventListener("DOMContentLoaded", function () {
  var tz = "";
  try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) {}
  document.querySelectorAll("input[data-browser-time-zone]").forEach(function (el) {
    if (!el.value) el.value = tz;
  });
});
