/* django-celery-beat's periodic task form (was an inline script in its template; the CSP allows none): hide the
   translation field and append the chosen crontab in words to the crontab's help text.

   Django's RelatedObjectLookups.js fires "change" on every related-object select when the form loads, so this runs
   for a task that has no crontab too (an interval task, the add form): there the select is empty, the lookup gives
   nothing, and the help once read "Translation: undefined". Only a crontab that has words adds a line. */
(function ($) {
  "use strict";
  if (!$) return;
  var data = document.getElementById("readable-crontabs");
  var readableCrontabs = data ? JSON.parse(data.textContent) : {};
  var help = $(".field-crontab .help");
  var originalCrontabHelp = help.html();

  $(".field-crontab_translation").hide();
  $(".field-crontab").change(function () {
    var chosen = $("#id_crontab").val();
    var words = chosen ? readableCrontabs[chosen] : null;
    help.html(originalCrontabHelp);
    if (words) help.append("<br>", document.createTextNode("Runs: " + words));
  });
})(window.django && window.django.jQuery);
