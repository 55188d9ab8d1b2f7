/* Review queue (coin changelist): R starts reviewing the queue as filtered and ordered, without reaching for the mouse. */
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.key.toLowerCase() !== "r") return;
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName) || event.target.isContentEditable) return;
    const start = document.querySelector("a.review-start");
    if (!start) return;
    event.preventDefault();
    window.location.assign(start.href);
  });
})();
