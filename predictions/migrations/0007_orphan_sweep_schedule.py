"""Beat schedule: every 15 minutes, remove photo files no coin names (editable in the admin's Periodic tasks)."""

from django.db import migrations

NAME = "Remove photo files with no coin"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_15_min, _ = IntervalSchedule.objects.get_or_create(every=15, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": "predictions.tasks.photo_orphans_sweep_task",
            "interval": every_15_min,
            "queue": "inference",
            "description": "Files stored for a request whose row never committed (a killed process), after a grace "
            "period (COINSITE_ORPHAN_GRACE_SECONDS).",
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("predictions", "0006_coin_thumbnails"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
