"""What started a training run (schedule, model owner, command, first-run set-up), recorded instead of guessed: the
list said "by schedule" for every run without a requesting user, `make run`'s first run included. Runs queued before
keep "not recorded", except those a model owner started (requested_by names them)."""

from django.db import migrations, models


def owners_recorded(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    TrainingRun.objects.filter(requested_by__isnull=False).update(origin="owner")


class Migration(migrations.Migration):
    dependencies = [("training", "0008_monitoring_snapshot")]

    operations = [
        migrations.AddField(
            model_name="trainingrun",
            name="origin",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "not recorded"),
                    ("schedule", "schedule"),
                    ("owner", "model owner"),
                    ("command", "command"),
                    ("bootstrap", "first-run set-up"),
                ],
                default="",
                max_length=12,
            ),
        ),
        migrations.RunPython(owners_recorded, migrations.RunPython.noop),
    ]
