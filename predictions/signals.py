"""Every sign-up becomes a collector."""

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from .roles import COLLECTOR


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="user_joins_collectors")
def user_joins_collectors(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        from django.contrib.auth.models import Group

        group, _ = Group.objects.get_or_create(name=COLLECTOR)
        instance.groups.add(group)
