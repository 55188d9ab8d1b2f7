"""Beat schedule: every 5 minutes, re-enqueue coins still pending (editable in the admin's Periodic tasks)."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_5_min, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name="Predict coins still pending",
        defaults={
            "task": "predictions.tasks.predict_pending_task",
            "interval": every_5_min,
            "queue": "inference",
            "description": "Safety net: coins accepted but not predicted (lost message, no model yet) are queued again.",
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name="Predict coins still pending").delete()


class Migration(migrations.Migration):
    dependencies = [("predictions", "0002_roles"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
