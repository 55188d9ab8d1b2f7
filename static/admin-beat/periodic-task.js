/* django-celery-beat's periodic task form (was an inline script in its template; the CSP allows none): hide the
   translation field and append the chosen crontab in words to the crontab's help text. */
(function ($) {
  "use strict";
  if (!$) return;
  var data = document.getElementById("readable-crontabs");
  var readableCrontabs = data ? JSON.parse(data.textContent) : {};
  var help = $(".field-crontab .help");
  var originalCrontabHelp = help.html();

  $(".field-crontab_translation").hide();
  $(".field-crontab").change(function () {
    var words = readableCrontabs[$("#id_crontab").val()];
    help.html(originalCrontabHelp).append("<br>", document.createTextNode("Translation: " + words));
  });
})(window.django && window.django.jQuery);
