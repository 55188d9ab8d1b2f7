/* Keyboard flow of the coin review page (templates/admin/predictions/coin/review.html).
 *
 * Hotkeys act only while the focus is on the page, never inside a text field (input, textarea, select,
 * contenteditable): there, only the field's own keys count, so a "b" typed into the year field is refused, it does not
 * open the zoom. On the page: Enter confirms the predicted year (the server reads an empty field as "confirm"); a
 * digit moves into the year field (then Enter corrects); N toggles "not a coin", U "unusable photo" (one unticks the
 * other); F / B zoom the front / back;
 * Z undoes your last decision; Escape skips to the next coin (or closes the zoomed photo first). In a field, Escape
 * leaves it (and does nothing else), so the hotkeys work again.
 */
(function () {
  "use strict";

  function init() {
    const form = document.getElementById("review-form");
    if (!form) return;
    const year = form.querySelector("input[name=year]");
    const exclude = form.querySelector("input[name=exclude][type=checkbox]");
    const notCoin = form.querySelector("input[name=not_a_coin][type=checkbox]");
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
      if (notCoin && notCoin.checked) {
        save.textContent = "Mark not a coin";
      } else if (exclude && exclude.checked) {
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
      if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
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

    function isField(element) {
      if (!element || element === document.body) return false;
      if (element.isContentEditable) return true;
      return /^(INPUT|TEXTAREA|SELECT)$/.test(element.tagName);
    }

    function isActivatable(element) {
      return element && /^(A|BUTTON|SUMMARY)$/.test(element.tagName);
    }

    function typeDigit(digit) {
      year.focus();
      if (year.value.length < 4) year.value += digit;
      updateSaveLabel();
    }

    function toggle(box, other) {
      box.checked = !box.checked;
      if (box.checked && other) other.checked = false;
      updateSaveLabel();
    }

    function undoLast() {
      const undo = document.querySelector(".review-undo-form");
      if (undo && !submitting) {
        submitting = true;
        undo.submit();
      }
    }

    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
      const key = event.key;
      const lower = key.length === 1 ? key.toLowerCase() : "";
      if (!lightbox.hidden) {
        // The zoomed photo covers the page: its own keys only.
        if (key === "Escape" || key === "Enter") {
          event.preventDefault();
          closeZoom();
        } else if (lower === "f" || lower === "b") {
          event.preventDefault();
          openZoom(lower === "f" ? "front" : "back");
        }
        return;
      }
      if (isField(event.target)) {
        if (key === "Escape") {
          event.preventDefault();
          event.target.blur(); // leave the field: nothing else
        } else if (event.target === year && key.length === 1 && !/[0-9]/.test(key)) {
          event.preventDefault(); // the year field takes digits only, and a letter is no hotkey here
        }
        return; // Enter submits the year field's form natively; every other key belongs to the field
      }
      if (key === "Escape") {
        event.preventDefault();
        if (skip) window.location.assign(skip.href);
      } else if (key === "Enter") {
        if (isActivatable(event.target)) return; // a focused button or link does its own thing
        event.preventDefault();
        if (!submitting) form.requestSubmit(save);
      } else if (/^[0-9]$/.test(key)) {
        event.preventDefault();
        typeDigit(key);
      } else if (lower === "f" || lower === "b") {
        event.preventDefault();
        openZoom(lower === "f" ? "front" : "back");
      } else if (lower === "u" && exclude) {
        event.preventDefault();
        toggle(exclude, notCoin);
      } else if (lower === "n" && notCoin) {
        event.preventDefault();
        toggle(notCoin, exclude);
      } else if (lower === "z") {
        event.preventDefault();
        undoLast();
      }
    });

    year.addEventListener("input", updateSaveLabel);
    if (exclude) exclude.addEventListener("change", function () {
      if (exclude.checked && notCoin) notCoin.checked = false;
      updateSaveLabel();
    });
    if (notCoin) notCoin.addEventListener("change", function () {
      if (notCoin.checked && exclude) exclude.checked = false;
      updateSaveLabel();
    });
    form.addEventListener("submit", function (event) {
      if (submitting) {
        event.preventDefault(); // a second Enter must not decide the next coin with this coin's form
        return;
      }
      submitting = true;
    });

    if (form.querySelector(".review-error, .errornote:not(.review-claimed)")) {
      year.focus(); // after a refused year, typing the right one is what comes next
      year.select();
    } else {
      year.value = ""; // a value the browser restored (back button) must not be saved by accident
    }
    updateSaveLabel();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
