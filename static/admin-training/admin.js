/* The model owners' admin: confirm before Promote / Roll back / Cancel, refresh pages while a training run is
   active, a readable placeholder when an MLflow plot cannot be loaded, bar sizes and auto-submitting selects (the
   Content-Security-Policy of coinsite/csp.py allows no inline style attribute or event handler). No dependencies. */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-mt-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  }, true);

  // A form that starts long work (training in-process, re-scoring) says so and cannot be sent twice.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var text = form && form.getAttribute && form.getAttribute("data-mt-busy");
    if (!text || event.defaultPrevented) return;
    window.setTimeout(function () {
      form.querySelectorAll("input[type=submit], button[type=submit]").forEach(function (button) {
        button.disabled = true;
        if (button.tagName === "INPUT") button.value = text; else button.textContent = text;
      });
    }, 0);
  });

  // A select marked data-mt-autosubmit sends its form when changed (the movers page's version picker).
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field && field.form && field.hasAttribute && field.hasAttribute("data-mt-autosubmit")) field.form.submit();
  });

  // Sizes computed by the server (bar lengths and heights in %, a timeline period's share) come as data attributes
  // and are set through the CSSOM, which the policy allows; a style="..." attribute would be blocked.
  function applySizes() {
    document.querySelectorAll("[data-mt-width], [data-mt-height], [data-mt-grow]").forEach(function (el) {
      var width = parseFloat(el.getAttribute("data-mt-width"));
      var height = parseFloat(el.getAttribute("data-mt-height"));
      var grow = parseFloat(el.getAttribute("data-mt-grow"));
      if (!isNaN(width)) el.style.width = width + "%";
      if (!isNaN(height)) el.style.height = height + "%";
      if (!isNaN(grow)) el.style.flexGrow = String(grow);
    });
  }

  function busy() {
    // Never reload under the owner's hands: a selected row, a focused field or an open action menu.
    if (document.hidden) return true;
    if (document.querySelector("input.action-select:checked, #action-toggle:checked")) return true;
    var active = document.activeElement;
    return !!(active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName));
  }

  function startAutorefresh() {
    var marker = document.querySelector("[data-mt-autorefresh]");
    if (!marker) return;
    var seconds = parseInt(marker.getAttribute("data-mt-autorefresh"), 10) || 5;
    var timer = window.setInterval(function () {
      if (!busy()) window.location.reload();
    }, seconds * 1000);
    var stop = marker.querySelector("[data-mt-autorefresh-stop]");
    if (stop) {
      stop.addEventListener("click", function () {
        window.clearInterval(timer);
        marker.textContent = "Automatic refresh stopped; reload the page to see new progress.";
      });
    }
  }

  function plotFallbacks() {
    document.querySelectorAll("img[data-mt-plot]").forEach(function (img) {
      function missing() {
        var figure = img.closest("figure");
        if (!figure) return;
        var caption = figure.querySelector("figcaption");
        figure.classList.add("mt-plot--missing");
        figure.textContent = (caption ? caption.textContent + ": " : "") + "plot not available";
      }
      if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) {
        missing();
      } else {
        img.addEventListener("error", missing);
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { applySizes(); startAutorefresh(); plotFallbacks(); });
  } else {
    applySizes();
    startAutorefresh();
    plotFallbacks();
  }
})();
