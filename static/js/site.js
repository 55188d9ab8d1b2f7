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

  /** Width and height from a JPEG, PNG or WebP header (the first bytes of the file), or null. Reading the header
      costs nothing, where letting the browser decode a 256-megapixel photo to learn its size could stall the tab. */
  function headerSize(buffer) {
    var b = new DataView(buffer);
    var n = b.byteLength;
    if (n > 24 && b.getUint32(0) === 0x89504E47) { return { w: b.getUint32(16), h: b.getUint32(20) }; }
    if (n > 4 && b.getUint16(0) === 0xFFD8) {
      var i = 2;
      while (i + 9 < n) {
        if (b.getUint8(i) !== 0xFF) { return null; }
        var marker = b.getUint8(i + 1);
        if (marker === 0xFF) { i += 1; continue; }
        if (marker >= 0xC0 && marker <= 0xCF && marker !== 0xC4 && marker !== 0xC8 && marker !== 0xCC) {
          return { w: b.getUint16(i + 7), h: b.getUint16(i + 5) };
        }
        i += 2 + b.getUint16(i + 2);
      }
      return null;
    }
    if (n > 30 && b.getUint32(0) === 0x52494646 && b.getUint32(8) === 0x57454250) {
      var chunk = b.getUint32(12);
      if (chunk === 0x56503858) {
        return { w: 1 + (b.getUint8(24) | b.getUint8(25) << 8 | b.getUint8(26) << 16),
                 h: 1 + (b.getUint8(27) | b.getUint8(28) << 8 | b.getUint8(29) << 16) };
      }
      if (chunk === 0x5650384C) { var bits = b.getUint32(21, true); return { w: (bits & 0x3FFF) + 1, h: ((bits >> 14) & 0x3FFF) + 1 }; }
      if (chunk === 0x56503820) { return { w: b.getUint16(26, true) & 0x3FFF, h: b.getUint16(28, true) & 0x3FFF }; }
    }
    return null;
  }

  function megapixels(pixels) { return (pixels / 1e6).toFixed(1) + " megapixels"; }

  function setupDropzone(zone, maxBytes, maxPixels) {
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
    zone.sizeProblem = "";

    zone.check = function () {
      var file = input.files && input.files[0];
      var problem = file ? (photoProblem(file, label, maxBytes) || zone.sizeProblem) : label + ": no photo chosen yet.";
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
      if (zone.checkedFile !== file) { zone.sizeProblem = ""; }
      zone.checkedFile = file;
      if (maxPixels && !zone.sizeProblem && file.slice && file.arrayBuffer) {
        file.slice(0, 262144).arrayBuffer().then(function (buffer) {
          var size = headerSize(buffer);
          if (size && size.w * size.h > maxPixels && input.files[0] === file) {
            zone.sizeProblem = label + ": \u201c" + file.name + "\u201d is " + size.w + "\u00d7" + size.h + " = " +
              megapixels(size.w * size.h) + "; the limit is " + megapixels(maxPixels) + ". Send a smaller photo.";
            show();
          }
        }).catch(function () { /* the server checks again */ });
      }
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
    var maxPixels = parseInt(form.getAttribute("data-max-pixels"), 10) || 0;
    var zones = Array.prototype.slice.call(form.querySelectorAll("[data-dropzone]"));
    var submit = form.querySelector("[data-submit]");
    var generalError = form.querySelector("[data-upload-error]");
    var progress = form.querySelector("[data-progress]");
    var bar = form.querySelector("[data-progress-bar]");
    var progressText = form.querySelector("[data-progress-text]");
    form.noValidate = true; // our own messages replace the browser's bubbles on hidden inputs
    zones.forEach(function (zone) { setupDropzone(zone, maxBytes, maxPixels); });
    // Stop the browser from opening a photo dropped next to a zone.
    window.addEventListener("dragover", function (event) { event.preventDefault(); });
    window.addEventListener("drop", function (event) { event.preventDefault(); });

    function ready() {
      submit.disabled = false;
      submit.textContent = "Get the year";
      if (progress) { progress.hidden = true; }
    }

    function showErrors(errors) {
      var general = [];
      Object.keys(errors).forEach(function (field) {
        var zone = form.querySelector("[data-dropzone] [name='" + field + "']");
        zone = zone && zone.closest("[data-dropzone]");
        if (zone) {
          zone.querySelector("[data-error]").textContent = errors[field].join(" ");
          zone.classList.add("dropzone--error");
        } else {
          general = general.concat(errors[field]);
        }
      });
      zones.forEach(function (zone) {  // a photo with no error stays chosen and is shown as fine
        var input = zone.querySelector(".dropzone__input");
        if (!errors[input.name]) { zone.querySelector("[data-error]").textContent = ""; zone.classList.remove("dropzone--error"); }
      });
      generalError.textContent = general.join(" ");
      generalError.hidden = !general.length;
      var first = form.querySelector(".dropzone--error .dropzone__area");
      if (first) { first.scrollIntoView({ block: "center", behavior: "smooth" }); }
    }

    /** Send the form with a progress bar; on an error both chosen photos stay, and only the bad one is marked. */
    function send() {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      if (progress) { progress.hidden = false; bar.value = 0; progressText.textContent = "Sending\u2026"; }
      xhr.upload.addEventListener("progress", function (event) {
        if (!event.lengthComputable || !progress) { return; }
        var percent = Math.round(100 * event.loaded / event.total);
        bar.value = percent;
        progressText.textContent = percent < 100 ? "Sending\u2026 " + percent + " %" : "Checking the photos\u2026";
      });
      xhr.addEventListener("load", function () {
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (error) { data = null; }
        if (xhr.status < 300 && data && data.redirect) { window.location.assign(data.redirect); return; }
        ready();
        if (data && data.errors) { showErrors(data.errors); return; }
        var why = xhr.status === 429 ? "Too many uploads in a short time: wait a minute and send again." :
          xhr.status === 413 ? "The photos are too large for the server: send smaller photos." :
          "The server could not take the photos (HTTP " + xhr.status + "). Your photos are still chosen: send again.";
        showErrors({ __all__: [why] });
      });
      xhr.addEventListener("error", function () {
        ready();
        showErrors({ __all__: ["The connection was lost while sending. Your photos are still chosen: send again."] });
      });
      xhr.send(new FormData(form));
    }

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
      if (window.XMLHttpRequest && window.FormData) {
        event.preventDefault();
        generalError.hidden = true;
        send();
      }
    });
    window.addEventListener("pageshow", ready);
  }

  function setupStatus(panel) {
    if (panel.getAttribute("data-status") !== "pending" || !window.fetch) { return; }
    var url = panel.getAttribute("data-status-url");
    var delay = 1000;
    var badge = document.querySelector("[data-status-badge]");

    function render(data) {
      panel.setAttribute("data-status", data.status);
      if (badge) {  /* the verdict: dated, not a coin, date not readable, failed (predictions/verdicts.py) */
        badge.className = "badge badge--" + data.verdict;
        badge.textContent = data.verdict_label;
      }
      var headingEl = panel.querySelector("[data-heading]");
      if (headingEl) { headingEl.textContent = data.heading; }
      panel.querySelectorAll("[data-state]").forEach(function (el) {
        el.hidden = el.getAttribute("data-state") !== data.status;
      });
      var yearEl = panel.querySelector("[data-year]");
      if (yearEl && data.year_html) {  /* a year, or why there is none */
        yearEl.innerHTML = data.year_html;  /* rendered (and escaped) by the server's _year.html */
        var notesEl = panel.querySelector("[data-year-notes]");
        if (notesEl) { notesEl.innerHTML = data.notes_html; }
        var modelEl = panel.querySelector("[data-model]");
        modelEl.textContent = "";
        modelEl.appendChild(document.createTextNode(data.rejected ? "Checked by " : "Predicted by "));
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
