"""Creates the role groups (collector, curator, model_owner) with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# The permissions per group as they were when this migration was written ("app_label.codename"): frozen here,
# because the live list in predictions.roles names the models by the app that owns them today.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    "collector": ["predictions.add_coin", "predictions.view_coin", "predictions.delete_coin"],
    "curator": [
        "predictions.review_coin",
        "predictions.view_coin",
        "predictions.change_coin",
        "predictions.view_prediction",
        "predictions.view_correction",
        "predictions.add_correction",
    ],
    "model_owner": [
        "training.promote_modelversion",
        "training.start_trainingrun",
        "training.view_modelversion",
        "training.view_trainingrun",
        "training.change_trainingrun",
        "training.add_trainingrun",
        "training.view_datasetversion",
        "training.view_promotion",
        "predictions.view_coin",
        "predictions.view_prediction",
        "django_celery_beat.view_periodictask",
        "django_celery_beat.change_periodictask",
        "django_celery_beat.add_periodictask",
        "django_celery_beat.view_crontabschedule",
        "django_celery_beat.add_crontabschedule",
        "django_celery_beat.change_crontabschedule",
        "django_celery_beat.view_intervalschedule",
        "django_celery_beat.add_intervalschedule",
        "django_celery_beat.change_intervalschedule",
    ],
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        for perm in perms:
            app_label, codename = perm.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def delete_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLE_PERMISSIONS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0001_initial"),
        ("training", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [migrations.RunPython(create_roles, delete_roles)]
