"""Model owners see sweeps (predictions.roles lists training.view_sweep for them; this gives it to existing groups)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    app_config = apps.get_app_config("training")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.filter(content_type__app_label="training", codename="view_sweep").first()
    group = Group.objects.filter(name="model_owner").first()
    if permission is not None and group is not None:
        group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [("training", "0010_sweeps"), ("predictions", "0002_roles")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
