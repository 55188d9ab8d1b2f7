/* Coinsite: progressive enhancement only. Every page works without this file; with it you get drag & drop,
   previews, camera capture, client-side photo checks, delete confirmation and a self-refreshing coin status. */
(function () {
  "use strict";

  var ACCEPTED_TYPES = ["image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"];
  var ACCEPTED_EXTENSIONS = ["jpg", "jpeg", "png", "webp", "heic", "heif"];

  function formatMB(bytes) {
    if (bytes < 1024 * 1024) { return Math.max(1, Math.round(bytes / 1024)) + " KB"; }
    var mb = bytes / (1024 * 1024);
    return (mb >= 10 ? Math.round(mb) : Math.round(mb * 10) / 10) + " MB";
  }

  /** The problem with a chosen file, in words, or "" when it looks fine. The server checks again. */
  function photoProblem(file, label, maxBytes) {
    var name = "\u201c" + file.name + "\u201d";
    var extension = (file.name.split(".").pop() || "").toLowerCase();
    var typeOk = ACCEPTED_TYPES.indexOf(file.type) !== -1 ||
      ((file.type === "" || file.type === "application/octet-stream") && ACCEPTED_EXTENSIONS.indexOf(extension) !== -1);
    if (!typeOk) {
      var kind = file.type ? file.type.replace("image/", "").toUpperCase() + " file" : "file of an unknown type";
      return label + ": " + name + " is a " + kind + ". Use a JPEG, PNG, WebP or HEIC photo.";
    }
    if (file.size === 0) {
      return label + ": " + name + " is empty (0 bytes). Choose the photo again.";
    }
    if (maxBytes && file.size > maxBytes) {
      return label + ": " + name + " is " + formatMB(file.size) + "; the limit is " + formatMB(maxBytes) + " per photo.";
    }
    return "";
  }

  function setupDropzone(zone, maxBytes) {
    var input = zone.querySelector(".dropzone__input");
    var camera = zone.querySelector("[data-camera-input]");
    var cameraButton = zone.querySelector("[data-camera]");
    var preview = zone.querySelector("[data-preview]");
    var prompt = zone.querySelector("[data-prompt]");
    var nameEl = zone.querySelector("[data-filename]");
    var errorEl = zone.querySelector("[data-error]");
    var area = zone.querySelector(".dropzone__area");
    var label = zone.getAttribute("data-label");
    var objectUrl = null;

    zone.check = function () {
      var file = input.files && input.files[0];
      var problem = file ? photoProblem(file, label, maxBytes) : label + ": no photo chosen yet.";
      errorEl.textContent = problem;
      zone.classList.toggle("dropzone--error", !!problem);
      return problem;
    };

    function show() {
      var file = input.files && input.files[0];
      if (objectUrl) { URL.revokeObjectURL(objectUrl); objectUrl = null; }
      if (!file) {
        preview.hidden = true; prompt.hidden = false; nameEl.textContent = "No photo yet";
        zone.classList.remove("dropzone--filled");
        return;
      }
      nameEl.textContent = file.name + " \u00b7 " + formatMB(file.size);
      var problem = zone.check();
      zone.classList.toggle("dropzone--filled", !problem);
      if (problem) { preview.hidden = true; prompt.hidden = false; return; }
      objectUrl = URL.createObjectURL(file);
      preview.onerror = function () { preview.hidden = true; prompt.hidden = false; }; // e.g. HEIC in desktop browsers
      preview.src = objectUrl;
      preview.hidden = false;
      prompt.hidden = true;
    }

    function take(files) {
      if (!files || !files.length) { return; }
      try {
        var transfer = new DataTransfer();
        transfer.items.add(files[0]);
        input.files = transfer.files;
      } catch (error) {
        return; // very old browsers: the plain file input still works
      }
      show();
    }

    input.addEventListener("change", show);
    ["dragenter", "dragover"].forEach(function (type) {
      area.addEventListener(type, function (event) {
        event.preventDefault();
        zone.classList.add("dropzone--over");
      });
    });
    ["dragleave", "dragend", "drop"].forEach(function (type) {
      area.addEventListener(type, function () { zone.classList.remove("dropzone--over"); });
    });
    area.addEventListener("drop", function (event) {
      event.preventDefault();
      take(event.dataTransfer && event.dataTransfer.files);
    });
    if (camera && cameraButton && window.matchMedia && window.matchMedia("(pointer: coarse)").matches) {
      cameraButton.hidden = false;
      cameraButton.addEventListener("click", function () { camera.click(); });
      camera.addEventListener("change", function () { take(camera.files); });
    }
    if (input.files && input.files.length) { show(); } // back/forward cache kept the file
  }

  function setupUpload(form) {
    var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;
    var zones = Array.prototype.slice.call(form.querySelectorAll("[data-dropzone]"));
    var submit = form.querySelector("[data-submit]");
    form.noValidate = true; // our own messages replace the browser's bubbles on hidden inputs
    zones.forEach(function (zone) { setupDropzone(zone, maxBytes); });
    // Stop the browser from opening a photo dropped next to a zone.
    window.addEventListener("dragover", function (event) { event.preventDefault(); });
    window.addEventListener("drop", function (event) { event.preventDefault(); });
    form.addEventListener("submit", function (event) {
      var problems = zones.map(function (zone) { return zone.check(); }).filter(Boolean);
      if (problems.length) {
        event.preventDefault();
        var first = form.querySelector(".dropzone--error .dropzone__area");
        if (first) { first.scrollIntoView({ block: "center", behavior: "smooth" }); }
        return;
      }
      submit.disabled = true;
      submit.textContent = "Uploading\u2026";
    });
    window.addEventListener("pageshow", function () { submit.disabled = false; submit.textContent = "Get the year"; });
  }

  function setupStatus(panel) {
    if (panel.getAttribute("data-status") !== "pending" || !window.fetch) { return; }
    var url = panel.getAttribute("data-status-url");
    var delay = 1000;
    var badge = document.querySelector("[data-status-badge]");

    function render(data) {
      panel.setAttribute("data-status", data.status);
      if (badge) {
        badge.className = "badge badge--" + data.status;
        badge.textContent = data.status.charAt(0).toUpperCase() + data.status.slice(1);
      }
      panel.querySelectorAll("[data-state]").forEach(function (el) {
        el.hidden = el.getAttribute("data-state") !== data.status;
      });
      if (data.year !== null && data.year !== undefined) {
        var yearEl = panel.querySelector("[data-year]");
        yearEl.innerHTML = data.year_html;  /* rendered (and escaped) by the server's _year.html */
        var notesEl = panel.querySelector("[data-year-notes]");
        if (notesEl) { notesEl.innerHTML = data.notes_html; }
        var modelEl = panel.querySelector("[data-model]");
        modelEl.textContent = "";
        modelEl.appendChild(document.createTextNode("Predicted by "));
        var strong = document.createElement("strong");
        strong.textContent = data.model || ("v" + data.version);
        modelEl.appendChild(strong);
        modelEl.appendChild(document.createTextNode(" just now."));
      }
      if (data.status === "failed") {
        var detail = panel.querySelector("[data-status-detail]");
        if (detail) { detail.textContent = data.status_detail ? ": " + data.status_detail : ""; }
      }
    }

    function poll() {
      if (document.hidden) { setTimeout(poll, delay); return; }
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) {
          if (data.status !== "pending") { render(data); return; }
          delay = Math.min(delay * 1.5, 15000);
          setTimeout(poll, delay);
        })
        .catch(function () {
          delay = Math.min(delay * 2, 30000);
          setTimeout(poll, delay);
        });
    }
    setTimeout(poll, delay);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
    var upload = document.querySelector("[data-upload-form]");
    if (upload) { setupUpload(upload); }
    var status = document.querySelector("[data-coin-status]");
    if (status) { setupStatus(status); }
  });
})();
