/* Keyboard flow of the coin review page (templates/admin/predictions/coin/review.html).
 *
 * Focus starts in the empty year field. Enter with it empty confirms the predicted year (the server reads an empty
 * field as "confirm"); digits + Enter correct it; U toggles "unusable photo"; Escape skips to the next coin (or closes
 * the zoomed photo first); F / B zoom the front / back. Letters never end up in the year field.
 */
(function () {
  "use strict";

  function init() {
    const form = document.getElementById("review-form");
    if (!form) return;
    const year = form.querySelector("input[name=year]");
    const exclude = form.querySelector("input[name=exclude][type=checkbox]");
    const save = document.getElementById("review-save");
    const skip = document.getElementById("review-skip");
    const lightbox = document.getElementById("review-lightbox");
    const lightboxImg = document.getElementById("review-lightbox-img");
    const confirmYear = form.dataset.confirmYear;
    const photos = {
      front: document.getElementById("review-front"),
      back: document.getElementById("review-back"),
    };
    let submitting = false;

    function updateSaveLabel() {
      const typed = year.value.trim();
      if (exclude && exclude.checked) {
        save.textContent = typed ? "Exclude (year " + typed + ")" : "Exclude from training";
      } else if (typed) {
        save.textContent = "Correct to " + typed;
      } else {
        save.textContent = confirmYear ? "Confirm " + confirmYear : "Save";
      }
    }

    function openZoom(side) {
      const img = photos[side];
      if (!img) return;
      lightboxImg.src = img.currentSrc || img.src;
      lightboxImg.alt = img.alt;
      lightbox.dataset.side = side;
      lightbox.classList.remove("is-actual");
      lightbox.hidden = false;
    }

    function closeZoom() {
      lightbox.hidden = true;
      year.focus();
    }

    document.querySelectorAll(".review-zoom").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        openZoom(link.dataset.side);
      });
    });
    lightbox.addEventListener("click", function (event) {
      if (event.target !== lightboxImg) {
        closeZoom();
        return;
      }
      // Toggle a magnified view centred where the curator clicked (to read a worn date, say).
      const box = lightboxImg.getBoundingClientRect();
      const fx = (event.clientX - box.left) / box.width;
      const fy = (event.clientY - box.top) / box.height;
      const magnified = lightbox.classList.toggle("is-actual");
      if (magnified) {
        const big = lightboxImg.getBoundingClientRect();
        lightbox.scrollLeft = fx * big.width - lightbox.clientWidth / 2;
        lightbox.scrollTop = fy * big.height - lightbox.clientHeight / 2;
      }
    });

    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      const key = event.key;
      const zoomed = !lightbox.hidden;
      if (key === "Escape") {
        event.preventDefault();
        if (zoomed) closeZoom();
        else if (skip) window.location.assign(skip.href);
        return;
      }
      if (zoomed && key === "Enter") {
        event.preventDefault();
        closeZoom();
        return;
      }
      const inOtherField = event.target !== year && /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName);
      if (inOtherField) return;
      const lower = key.length === 1 ? key.toLowerCase() : "";
      if (lower === "f" || lower === "b") {
        event.preventDefault();
        openZoom(lower === "f" ? "front" : "back");
      } else if (lower === "u" && exclude) {
        event.preventDefault();
        exclude.checked = !exclude.checked;
        updateSaveLabel();
      } else if (event.target === year && key.length === 1 && !/[0-9]/.test(key)) {
        event.preventDefault(); // the year field takes digits only
      }
    });

    year.addEventListener("input", updateSaveLabel);
    if (exclude) exclude.addEventListener("change", updateSaveLabel);
    form.addEventListener("submit", function (event) {
      if (submitting) {
        event.preventDefault(); // a second Enter must not decide the next coin with this coin's form
        return;
      }
      submitting = true;
    });

    if (!form.querySelector(".review-error")) year.value = "";
    year.focus();
    updateSaveLabel();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
