"""Prediction.model_version points at registry.ModelVersion (the same table as before): state only."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0004_prediction_reader_details"),
        ("registry", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="prediction",
                    name="model_version",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="predictions",
                        to="registry.modelversion",
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
