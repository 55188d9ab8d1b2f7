"""The three roles and what each may do. Groups are created by a data migration; checks go through permissions.

The collector and curator checks live here; the model owner's (promote, train) live in registry.roles, the layer
that needs them."""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, Permission

from registry.roles import MODEL_OWNER

COLLECTOR = "collector"
CURATOR = "curator"

# Permission codenames per group ("app_label.codename").
ROLE_PERMISSIONS: dict[str, list[str]] = {
    COLLECTOR: ["predictions.add_coin", "predictions.view_coin", "predictions.delete_coin"],
    CURATOR: [
        "predictions.review_coin",
        "predictions.view_coin",
        "predictions.change_coin",
        "predictions.view_prediction",
        "predictions.view_correction",
        "predictions.add_correction",
    ],
    MODEL_OWNER: [
        "registry.promote_modelversion",
        "training.start_trainingrun",
        "registry.view_modelversion",
        "training.view_trainingrun",
        "training.change_trainingrun",
        "training.add_trainingrun",
        "training.view_datasetversion",
        "training.view_sweep",
        "registry.view_promotion",
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


def can_review(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user.is_authenticated and user.has_perm("predictions.review_coin")


def can_list_coins_in_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether the admin may list every coin to this user: staff holding predictions.view_coin through anything but
    the collector role (curators, model owners, a group or a permission of their own), or a superuser. The collector
    role's view_coin means their own coins on the site: a staff member whose only group was collector listed every
    collector's coins in the admin."""
    if not (user.is_active and user.is_staff):
        return False
    if user.is_superuser or can_review(user) or user.has_perm("registry.promote_modelversion"):
        return True  # curators and model owners, from the permissions Django has cached on the user: no query
    view_coin = {"codename": "view_coin", "content_type__app_label": "predictions"}
    if user.user_permissions.filter(**view_coin).exists():
        return True
    granting = {f"permissions__{field}": value for field, value in view_coin.items()}
    return user.groups.filter(**granting).exclude(name=COLLECTOR).exists()


def user_add_role(*, user, role: str) -> None:
    """Put a user in one of the role groups (the groups themselves come from the data migration)."""
    user.groups.add(Group.objects.get(name=role))


def role_groups_ensure() -> None:
    """Create the role groups with their permissions if missing (idempotent).

    The data migration creates them; this restores them where a database was flushed (transactional tests, a
    `flush` by hand) so role checks never depend on leftover state.
    """
    for app_config in apps.get_app_configs():  # a flush without post_migrate leaves no permissions either
        create_permissions(app_config, verbosity=0)
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            wanted.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.add(*wanted)
