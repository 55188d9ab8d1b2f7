"""The learning loop's schedule, as django-celery-beat rows (editable by model owners in the admin).

- "Retrain when enough new labels": daily at 03:00 (TIME_ZONE), calls training.tasks.retrain_if_enough_labels_task,
  which does nothing unless settings.RETRAIN_MIN_NEW_LABELS new verified labels exist and no run is queued or running.
- "Reap stale training runs": every 5 minutes, marks RUNNING runs whose worker stopped heart-beating as failed, so a
  dead worker never holds the training lock for long.

Existing rows with the same names are left as they are (an owner may have edited them).
"""

from django.db import migrations

RETRAIN_NAME = "Retrain when enough new labels"
REAP_NAME = "Reap stale training runs"


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    from django.conf import settings

    if not PeriodicTask.objects.filter(name=RETRAIN_NAME).exists():
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute="0", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
        )
        PeriodicTask.objects.create(
            name=RETRAIN_NAME,
            task="training.tasks.retrain_if_enough_labels_task",
            crontab=crontab,
            queue="training",
            enabled=True,
            description="Starts a training run when enough new curator-verified labels exist since the last run.",
        )
    if not PeriodicTask.objects.filter(name=REAP_NAME).exists():
        every_5_min, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
        PeriodicTask.objects.create(
            name=REAP_NAME,
            task="training.tasks.training_run_reap_stale_task",
            interval=every_5_min,
            queue="training",
            enabled=True,
            description="Marks running training runs whose worker died (stale heartbeat) as failed.",
        )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[RETRAIN_NAME, REAP_NAME]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0002_trainingrun_lease"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
