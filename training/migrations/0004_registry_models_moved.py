"""ModelVersion and Promotion now belong to the registry app: removed from this app's state only (their tables stay,
with every row); their content types (and so the permissions the role groups hold) move with them."""

from django.db import migrations

MOVED = ("modelversion", "promotion")


def content_types_move(apps, schema_editor, *, source: str = "training", target: str = "registry") -> None:
    """Re-label the moved models' content types, so groups and users keep the permissions they had. Where the target
    label exists already (created while both states existed), its permissions take the source's holders and the
    source's content type goes."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    for model in MOVED:
        old = ContentType.objects.filter(app_label=source, model=model).first()
        if old is None:
            continue
        new = ContentType.objects.filter(app_label=target, model=model).first()
        if new is None:
            old.app_label = target
            old.save(update_fields=["app_label"])
            continue
        for permission in Permission.objects.filter(content_type=old):
            twin, _ = Permission.objects.get_or_create(
                content_type=new, codename=permission.codename, defaults={"name": permission.name}
            )
            twin.group_set.add(*permission.group_set.all())
            twin.user_set.add(*permission.user_set.all())
        old.delete()


def content_types_back(apps, schema_editor) -> None:
    content_types_move(apps, schema_editor, source="registry", target="training")


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("training", "0003_learning_loop_schedule"),
        ("registry", "0001_initial"),
        ("predictions", "0005_prediction_model_version_registry"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Promotion"),
                migrations.DeleteModel(name="ModelVersion"),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_move, content_types_back),
    ]
