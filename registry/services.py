"""Writes of the registry: the mirror of registered versions, promotion and rollback of Production.

ONE place moves the MLflow alias `production` and the mirror rows together and writes the audit row; what must happen
elsewhere when Production moves is done by receivers of registry.signals (sent in the transaction and on commit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import gateway
from .gateway import PRODUCTION_ALIAS, STAGING_ALIAS
from .models import ModelVersion, Promotion
from .roles import can_promote
from .selectors import production_history
from .signals import production_changed, promotion_recorded

logger = logging.getLogger(__name__)


def json_safe(value: Any) -> Any:
    """NaN/inf are not JSON (PostgreSQL's jsonb refuses them): None instead; numpy numbers to floats."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value


def model_version_mirror(*, version: int, name: str | None = None) -> ModelVersion:
    """The mirror row of a registered MLflow version, created from the registry when first seen in this database
    (a version may be registered by another host, e.g. a training worker or `manage.py train` elsewhere)."""
    name = name or settings.MLFLOW_MODEL_NAME
    existing = ModelVersion.objects.filter(name=name, version=version).first()
    if existing:
        return existing
    info = gateway.version_info(version, name=name)
    aliases = list(info.get("aliases", []))
    is_production = PRODUCTION_ALIAS in aliases
    try:
        with transaction.atomic():
            if is_production:  # the registry is the truth about the alias; the mirror follows it
                ModelVersion.objects.filter(name=name, is_production=True).update(is_production=False)
            return ModelVersion.objects.create(
                name=name,
                version=version,
                run_id=info.get("run_id", ""),
                metrics=json_safe(info.get("metrics", {})),
                aliases=aliases,
                is_production=is_production,
            )
    except IntegrityError:
        return ModelVersion.objects.get(name=name, version=version)


def model_version_alias_mirror(*, name: str, version: int, alias: str) -> None:
    """Reflect an alias move (done in MLflow by the caller) in the mirror rows' alias lists."""
    for row in ModelVersion.objects.select_for_update().filter(name=name):
        aliases = [a for a in row.aliases if a != alias]
        if row.version == version:
            aliases.append(alias)
        if aliases != row.aliases:
            row.aliases = aliases
            row.save(update_fields=["aliases"])


def _production_changed_on_commit(*, promotion: Promotion, previous: int | None) -> None:
    """Tell the layers above once the promotion committed; one failing receiver neither stops the others nor fails
    the promotion (it is logged)."""

    def send() -> None:
        results = production_changed.send_robust(
            sender=Promotion,
            promotion=promotion,
            version=promotion.to_version.version,
            previous=previous,
            action=promotion.action,
        )
        for receiver, result in results:
            if isinstance(result, Exception):
                logger.error("production_changed receiver %r failed", receiver, exc_info=result)

    transaction.on_commit(send, robust=True)


def _promotion_recorded(*, promotion: Promotion, previous: int | None) -> None:
    promotion_recorded.send(
        sender=Promotion,
        promotion=promotion,
        version=promotion.to_version.version,
        previous=previous,
        action=promotion.action,
    )


def model_version_initial_production(*, mirror: ModelVersion, actor) -> Promotion:
    """The very first version became Production at registration (the registry gave it the alias): mirror it and
    write the audit row (action=initial)."""
    with transaction.atomic():
        ModelVersion.objects.filter(name=mirror.name, is_production=True).exclude(pk=mirror.pk).update(
            is_production=False
        )
        mirror.is_production = True
        mirror.promoted_at = timezone.now()
        mirror.promoted_by = actor
        if PRODUCTION_ALIAS not in mirror.aliases:
            mirror.aliases = [*mirror.aliases, PRODUCTION_ALIAS]
        mirror.save(update_fields=["is_production", "promoted_at", "promoted_by", "aliases"])
        promotion = Promotion.objects.create(
            name=mirror.name, from_version=None, to_version=mirror, action=Promotion.Action.INITIAL, actor=actor
        )
        _promotion_recorded(promotion=promotion, previous=None)
        _production_changed_on_commit(promotion=promotion, previous=None)
        return promotion


def _check_promoter(actor, action: str) -> None:
    if actor is None:
        if action not in (Promotion.Action.AUTO, Promotion.Action.INITIAL):
            raise PermissionDenied("Only model owners can promote or roll back model versions.")
        return
    if not can_promote(actor):
        raise PermissionDenied("Only model owners can promote or roll back model versions.")


def model_version_promote(*, version: int, actor, action: str = Promotion.Action.PROMOTE) -> Promotion:
    """Make `version` Production: ONE place moves the MLflow alias `production` and the mirror (is_production,
    promoted_at/by, aliases) together and writes the audit row (who, when, from, to).

    The database writes and the alias move happen in one transaction, the alias last: if MLflow refuses, nothing in
    the database changed; if the commit fails after the alias moved, the alias is put back. `actor=None` is only the
    system's auto-promotion.
    """
    _check_promoter(actor, action)
    name = settings.MLFLOW_MODEL_NAME
    if version not in gateway.versions_list(name=name):
        raise ValidationError(f"{name} has no registered version {version}.")
    model_version_mirror(version=version)
    return _production_move(name=name, actor=actor, action=action, choose=lambda: version)


def model_version_rollback(*, actor) -> Promotion:
    """Put back the version that was Production before the current one (per the Promotion history; repeated
    rollbacks walk further back)."""
    _check_promoter(actor, Promotion.Action.ROLLBACK)

    def before_current() -> int:
        stack = production_history()
        if len(stack) < 2:
            raise ValidationError("There is no earlier Production version to roll back to.")
        return stack[-2]

    return _production_move(
        name=settings.MLFLOW_MODEL_NAME, actor=actor, action=Promotion.Action.ROLLBACK, choose=before_current
    )


def _production_move(*, name: str, actor, action: str, choose: Callable[[], int]) -> Promotion:
    """Move Production to the version ``choose()`` names, reading what is Production now only once every mirror row
    of the model is locked: a promotion racing a rollback on PostgreSQL otherwise wrote an audit row naming a stale
    "from" version (the chain read rollback 2->1, promote 2->3 while v1 was serving)."""
    previous = version = None
    try:
        with transaction.atomic():
            rows = {row.version: row for row in ModelVersion.objects.select_for_update().filter(name=name)}
            version = choose()
            previous = gateway.alias_version(PRODUCTION_ALIAS, name=name)
            for missing in {version, previous} - rows.keys() - {None}:  # registered elsewhere, not mirrored yet
                rows[missing] = ModelVersion.objects.select_for_update().get(
                    pk=model_version_mirror(version=missing, name=name).pk
                )
            target = rows[version]
            if previous == version and target.is_production:
                raise ValidationError(f"{name} v{version} is already in production.")
            from_row = rows.get(previous) if previous is not None else None
            if from_row is None:
                from_row = next((row for row in rows.values() if row.is_production), None)
            now = timezone.now()
            for row in rows.values():
                if row.version == version:
                    continue
                aliases = [a for a in row.aliases if a != PRODUCTION_ALIAS]
                if row.is_production or aliases != row.aliases:
                    row.is_production = False
                    row.aliases = aliases
                    row.save(update_fields=["is_production", "aliases"])
            target.is_production = True
            target.promoted_at = now
            target.promoted_by = actor
            target.aliases = [a for a in target.aliases if a != STAGING_ALIAS] + (
                [] if PRODUCTION_ALIAS in target.aliases else [PRODUCTION_ALIAS]
            )
            target.save(update_fields=["is_production", "promoted_at", "promoted_by", "aliases"])
            promotion = Promotion.objects.create(
                name=name, from_version=from_row, to_version=target, action=action, actor=actor
            )
            _promotion_recorded(promotion=promotion, previous=previous)
            gateway.alias_set(PRODUCTION_ALIAS, version, name=name)  # last: a refusal rolls the database back
    except Exception:
        current = _safe_alias(name)
        if version is not None and current == version and previous is not None and previous != version:
            gateway.alias_set(PRODUCTION_ALIAS, previous, name=name)  # the commit failed after the alias moved
        raise
    _staging_clear(name=name, version=version)
    _production_changed_on_commit(promotion=promotion, previous=previous)
    logger.info("%s: %s v%s -> v%s by %s", action, name, previous, version, actor or "system")
    return promotion


def _safe_alias(name: str) -> int | None:
    try:
        return gateway.alias_version(PRODUCTION_ALIAS, name=name)
    except Exception:  # noqa: BLE001
        return None


def _staging_clear(*, name: str, version: int) -> None:
    """A promoted version leaves Staging (stage semantics: Staging -> Production)."""
    try:
        if gateway.alias_version(STAGING_ALIAS, name=name) == version:
            gateway.alias_delete(STAGING_ALIAS, name=name)
    except Exception:  # noqa: BLE001 - cosmetic
        logger.warning("could not clear alias staging of v%s", version, exc_info=True)
