"""The monitoring page's figures, stored by a background refresh (training.services.monitoring_snapshot), and beat's
periodic task that refreshes them every 5 minutes on the `inference` queue (editable in the admin's Periodic tasks)."""

import django.core.serializers.json
from django.db import migrations, models

NAME = "Refresh the monitoring figures"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_5_min, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": "training.tasks.monitoring_refresh_task",
            "interval": every_5_min,
            "queue": "inference",
            "description": "Computes the owners' monitoring page (live accuracy, input drift) in the background, so "
            "the page only reads it.",
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0007_fold_parallel"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.CreateModel(
            name="MonitoringSnapshot",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "weeks",
                    models.PositiveSmallIntegerField(help_text="The window: the last `weeks` weeks.", unique=True),
                ),
                (
                    "name",
                    models.CharField(blank=True, help_text="The registered model the figures are of.", max_length=200),
                ),
                (
                    "report",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                        help_text="training.services.monitoring.MonitoringReport",
                    ),
                ),
                (
                    "figures",
                    models.JSONField(blank=True, default=list, help_text="[{title, uri (a PNG data: URL), alt}, ...]"),
                ),
                (
                    "digest",
                    models.CharField(
                        blank=True, help_text="What the figures show: redrawn only when it changes.", max_length=64
                    ),
                ),
                (
                    "computed_at",
                    models.DateTimeField(blank=True, help_text="When the figures were computed.", null=True),
                ),
                (
                    "compute_seconds",
                    models.FloatField(blank=True, help_text="How long computing them took.", null=True),
                ),
                (
                    "requested_at",
                    models.DateTimeField(
                        blank=True,
                        help_text="A refresh asked for and not finished yet (none: none pending).",
                        null=True,
                    ),
                ),
            ],
            options={"verbose_name": "monitoring snapshot"},
        ),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
