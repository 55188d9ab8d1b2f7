"""ModelVersion and Promotion move here from the training app: state only, their tables keep their names and rows."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("training", "0003_learning_loop_schedule"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ModelVersion",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(default="coin-year", max_length=100)),
                        ("version", models.PositiveIntegerField()),
                        ("run_id", models.CharField(blank=True, max_length=64)),
                        ("metrics", models.JSONField(blank=True, default=dict)),
                        ("aliases", models.JSONField(blank=True, default=list)),
                        ("is_production", models.BooleanField(default=False)),
                        ("promoted_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "promoted_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "training_run",
                            models.OneToOneField(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="model_version",
                                to="training.trainingrun",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "training_modelversion",
                        "ordering": ["-version"],
                        "permissions": [("promote_modelversion", "Can promote and roll back model versions")],
                        "constraints": [
                            models.UniqueConstraint(fields=("name", "version"), name="modelversion_unique_name_version"),
                            models.UniqueConstraint(
                                condition=models.Q(("is_production", True)),
                                fields=("name",),
                                name="modelversion_one_production",
                            ),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="Promotion",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(default="coin-year", max_length=100)),
                        (
                            "action",
                            models.CharField(
                                choices=[
                                    ("promote", "Promote"),
                                    ("rollback", "Roll back"),
                                    ("auto", "Auto-promote"),
                                    ("initial", "First version"),
                                ],
                                max_length=10,
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "from_version",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="registry.modelversion",
                            ),
                        ),
                        (
                            "to_version",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="promotions",
                                to="registry.modelversion",
                            ),
                        ),
                    ],
                    options={"db_table": "training_promotion", "ordering": ["-created_at", "-id"]},
                ),
            ],
            database_operations=[],
        ),
    ]
