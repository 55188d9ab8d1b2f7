"""The model owners' admin: model versions with their evidence, training runs, frozen datasets, the promotion history.

Every write goes through training.services (the same services the `retrain` command, Celery and the API use); the
views here only check the role, parse the request, call one service and report what happened. Everything else is
read-only, for everyone, superusers included: the registry mirror, the datasets and the audit trail are history, and
history edited by hand in a form is no longer evidence.

Who may do what (predictions.roles): model owners (and superusers) see and act; curators see only the "coins whose
year moved" page (it is their work list after a re-score); collectors and anonymous visitors never get past the admin's
login / 403.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from predictions.models import Coin, Prediction
from predictions.roles import can_promote, can_review, can_train

from . import services
from .models import DatasetVersion, ModelVersion, Promotion, TrainingRun

logger = logging.getLogger(__name__)

# What a service raises when the request is fine but the action is not possible (already in production, nothing to
# roll back to, an unknown --set key): shown to the owner as an error message. Anything else (MLflow unreachable, a
# bug) is shown too, but logged with its traceback.
EXPECTED_ERRORS = (ValidationError, ValueError, LookupError)

ASSETS = forms.Media(css={"all": ["admin-training/admin.css"]}, js=["admin-training/admin.js"])


# ---------------------------------------------------------------------------------------------------------------------
# Reading metrics and comparisons. The JSON comes from the training engine and MLflow; read it defensively so an old
# run, a run that failed half-way or a renamed key shows "—" instead of breaking the page.
# ---------------------------------------------------------------------------------------------------------------------

FOLD_METRICS = ("mae", "mse", "r2", "within_5", "within_10")
SHARE_METRICS = ("within_5", "within_10")
_FLAT_FOLD_KEY = re.compile(r"^fold[_\-/.]?(\d+)[_\-/.](\w+)$")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN -> None


def _metric(metrics: dict | None, *names: str) -> float | None:
    """The first of `names` present in `metrics` as a number (keys differ slightly between MLflow and the engine)."""
    for name in names:
        value = _number((metrics or {}).get(name))
        if value is not None:
            return value
    return None


def _first(*values: float | None) -> float | None:
    """The first value that is not None (0.0 is a value: `or` would skip it)."""
    return next((value for value in values if value is not None), None)


def fmt_number(value: Any, digits: int = 1) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:,.{digits}f}"


def _share(value: Any) -> float | None:
    """A share as a fraction 0..1, whether the engine wrote a fraction or a percentage."""
    number = _number(value)
    if number is None:
        return None
    return number / 100 if abs(number) > 1 else number


def fmt_share(value: Any) -> str:
    share = _share(value)
    return "—" if share is None else f"{share * 100:.0f}%"


def _version_sources(version: ModelVersion) -> list[dict]:
    run = version.training_run
    return [source for source in ((run.metrics if run else None), version.metrics) if isinstance(source, dict)]


def version_summary(version: ModelVersion) -> dict[str, float | None]:
    """Cross-validated headline numbers of a version: mean over folds, spread, and the constant baseline beside them."""
    merged: dict = {}
    for source in reversed(_version_sources(version)):  # the training run's own record wins over the MLflow copy
        merged.update(source)
        for nested in ("cv", "summary", "metrics"):
            if isinstance(source.get(nested), dict):
                merged.update(source[nested])
    baseline = merged.get("baseline") if isinstance(merged.get("baseline"), dict) else {}
    interval = merged.get("interval") if isinstance(merged.get("interval"), dict) else {}
    run = version.training_run
    config = run.config if run is not None and isinstance(run.config, dict) else {}
    summary = {
        "mae": _metric(merged, "mae", "cv_mae", "mae_mean", "mean_mae"),
        "mae_std": _metric(merged, "mae_std", "cv_mae_std", "std_mae"),
        "mse": _metric(merged, "mse", "cv_mse", "mse_mean"),
        "r2": _metric(merged, "r2", "cv_r2", "r2_mean"),
        "within_5": _share(_metric(merged, "within_5", "cv_within_5", "within_5_mean")),
        "within_10": _share(_metric(merged, "within_10", "cv_within_10", "within_10_mean")),
        "baseline_mae": _first(_metric(merged, "baseline_mae", "constant_baseline_mae"), _metric(baseline, "mae")),
        "coverage": _share(_first(_metric(merged, "interval_coverage", "coverage"), _metric(interval, "coverage"))),
        "interval_level": _share(
            _first(_metric(merged, "interval_level"), _metric(interval, "level"), _metric(config, "interval_level"))
        ),
        "interval_halfwidth": _first(_metric(merged, "interval_halfwidth"), _metric(interval, "halfwidth")),
    }
    mae, baseline_mae = summary["mae"], summary["baseline_mae"]
    summary["ratio"] = mae / baseline_mae if mae is not None and baseline_mae else None
    return summary


def version_folds(version: ModelVersion) -> list[dict]:
    """One row per fold ({fold, mae, mse, r2, within_5, within_10}); [] when the run recorded none."""
    sources = _version_sources(version)
    for source in sources:
        for key in ("folds", "fold_metrics"):
            rows = source.get(key)
            if isinstance(rows, list) and rows and all(isinstance(row, dict) for row in rows):
                return [
                    {
                        "fold": row.get("fold", index + 1),
                        **{name: _fold_value(name, row.get(name)) for name in FOLD_METRICS},
                    }
                    for index, row in enumerate(rows)
                ]
    for source in sources:  # flat MLflow keys: fold_1_mae, fold1/mae ...
        folds: dict[int, dict] = {}
        for key, value in source.items():
            match = _FLAT_FOLD_KEY.match(key)
            if match and match.group(2) in FOLD_METRICS:
                folds.setdefault(int(match.group(1)), {})[match.group(2)] = _fold_value(match.group(2), value)
        if folds:
            return [
                {"fold": index, **{name: folds[index].get(name) for name in FOLD_METRICS}} for index in sorted(folds)
            ]
    return []


def _fold_value(name: str, value: Any) -> float | None:
    return _share(value) if name in SHARE_METRICS else _number(value)


COMPARISON_ROWS = (
    # key, label, higher is better, formatter
    ("mae", "MAE (years)", False, fmt_number),
    ("mse", "MSE", False, lambda v: fmt_number(v, 0)),
    ("r2", "R²", True, lambda v: fmt_number(v, 3)),
    ("within_5", "within ±5 years", True, fmt_share),
    ("within_10", "within ±10 years", True, fmt_share),
)


@dataclass
class ComparisonView:
    """The TrainingRun.comparison JSON, flattened for one template."""

    rows: list[dict] = field(default_factory=list)
    decades: list[dict] = field(default_factory=list)
    corrected: dict | None = None
    verdict: str = ""
    production_version: Any = None
    evaluation_count: Any = None
    margin: Any = None
    note: str = ""
    decade_max: float | None = None


def _side(comparison: dict, name: str) -> dict:
    side = comparison.get(name)
    if isinstance(side, dict):
        return side
    prefix = f"{name}_"
    return {key[len(prefix) :]: value for key, value in comparison.items() if key.startswith(prefix)}


def _decades(comparison: dict, candidate: dict, production: dict) -> list[dict]:
    by_decade = comparison.get("mae_by_decade")
    cand, prod = candidate.get("mae_by_decade"), production.get("mae_by_decade")
    rows: dict[str, dict] = {}
    if isinstance(by_decade, dict) and ("candidate" in by_decade or "production" in by_decade):
        cand, prod = by_decade.get("candidate"), by_decade.get("production")
    elif isinstance(by_decade, dict):
        for decade, value in by_decade.items():
            if isinstance(value, dict):
                rows[str(decade)] = {
                    "candidate": _number(value.get("candidate")),
                    "production": _number(value.get("production")),
                }
    elif isinstance(by_decade, list):
        for row in by_decade:
            if isinstance(row, dict) and "decade" in row:
                rows[str(row["decade"])] = {
                    "candidate": _number(row.get("candidate")),
                    "production": _number(row.get("production")),
                }
    for side in (candidate, production):
        counts = side.get("decade_counts")
        if isinstance(counts, dict):
            for decade, count in counts.items():
                rows.setdefault(str(decade), {}).setdefault("count", count)
    for side_name, side in (("candidate", cand), ("production", prod)):
        if isinstance(side, dict):
            for decade, value in side.items():
                if isinstance(value, dict):  # {"mae": .., "count": ..}
                    rows.setdefault(str(decade), {})["count"] = value.get("count", value.get("n"))
                    value = value.get("mae")
                rows.setdefault(str(decade), {})[side_name] = _number(value)
    top = max((v for row in rows.values() for v in (row.get("candidate"), row.get("production")) if v), default=0)
    result = []
    for decade in sorted(rows, key=lambda d: (len(d), d)):
        row = rows[decade]
        label = decade if decade.endswith("s") or not decade.isdigit() else f"{decade}s"
        result.append(
            {
                "decade": label,
                "count": row.get("count"),
                "candidate": row.get("candidate"),
                "production": row.get("production"),
                "candidate_pct": round(100 * (row.get("candidate") or 0) / top, 1) if top else 0,
                "production_pct": round(100 * (row.get("production") or 0) / top, 1) if top else 0,
            }
        )
    return result


def comparison_view(comparison: dict | None, *, verdict: str = "") -> ComparisonView | None:
    """Candidate against Production on the same evaluation set, or None when the run stored no comparison."""
    if not isinstance(comparison, dict) or not comparison:
        return None
    candidate, production = _side(comparison, "candidate"), _side(comparison, "production")
    view = ComparisonView(
        verdict=str(comparison.get("verdict") or verdict or ""),
        production_version=comparison.get("production_version") or production.get("version"),
        evaluation_count=comparison.get("evaluation_count") or comparison.get("n") or candidate.get("count"),
        margin=comparison.get("margin") or comparison.get("margin_years"),
        note=str(comparison.get("reason") or comparison.get("note") or ""),
    )
    for key, label, higher_better, formatter in COMPARISON_ROWS:
        cand, prod = _fold_value(key, candidate.get(key)), _fold_value(key, production.get(key))
        if cand is None and prod is None:
            continue
        better = None
        if cand is not None and prod is not None and cand != prod:
            better = (cand > prod) == higher_better
        if cand is None or prod is None:
            delta = "—"
        elif key in SHARE_METRICS:
            delta = f"{(cand - prod) * 100:+.0f} pt"
        else:
            delta = ("+" if cand - prod > 0 else "") + formatter(cand - prod)
        view.rows.append(
            {
                "label": label,
                "candidate": formatter(cand),
                "production": formatter(prod),
                "delta": delta,
                "better": better,
            }
        )
    view.decades = _decades(comparison, candidate, production)
    view.decade_max = max(
        (v for row in view.decades for v in (row["candidate"], row["production"]) if v is not None), default=None
    )
    corrected = comparison.get("corrected") if isinstance(comparison.get("corrected"), dict) else {}
    cand_corrected = _first(
        _metric(corrected, "candidate_mae", "candidate"), _metric(candidate, "mae_corrected", "corrected_mae")
    )
    prod_corrected = _first(
        _metric(corrected, "production_mae", "production"), _metric(production, "mae_corrected", "corrected_mae")
    )
    if cand_corrected is not None or prod_corrected is not None or corrected:
        view.corrected = {
            "candidate": fmt_number(cand_corrected),
            "production": fmt_number(prod_corrected),
            "count": corrected.get("count", corrected.get("n", comparison.get("corrected_count"))),
            "better": None if cand_corrected is None or prod_corrected is None else cand_corrected < prod_corrected,
        }
    if not view.rows and not view.decades and view.corrected is None:
        return None
    return view


def run_progress(run: TrainingRun) -> dict:
    """Fold x/y and epoch x/y of a run, and how far along it is overall (0-100)."""
    progress = run.progress if isinstance(run.progress, dict) else {}
    fold, folds = _number(progress.get("fold")), _number(progress.get("folds"))
    epoch, epochs = _number(progress.get("epoch")), _number(progress.get("epochs"))
    percent = _number(progress.get("percent"))
    if percent is None and folds and epochs and fold is not None and epoch is not None:
        percent = 100 * ((max(fold, 1) - 1) * epochs + epoch) / (folds * epochs)
    elif percent is None and epochs and epoch is not None:
        percent = 100 * epoch / epochs
    if run.status == TrainingRun.Status.SUCCEEDED:
        percent = 100
    parts = []
    if folds:
        parts.append(f"fold {int(fold or 0)}/{int(folds)}")
    if epochs:
        parts.append(f"epoch {int(epoch or 0)}/{int(epochs)}")
    details = []
    if progress.get("stage") and progress.get("stage") not in ("training", "done"):
        details.append(str(progress["stage"]))
    for key, label in (("val_mae", "val MAE"), ("eval_mae", "eval MAE")):
        if _number(progress.get(key)) is not None:
            details.append(f"{label} {_number(progress[key]):.1f}")
    return {
        "percent": max(0.0, min(100.0, percent or 0.0)),
        "label": " · ".join(parts),
        "details": " · ".join(details),
        "known": percent is not None,
    }


def run_duration(run: TrainingRun) -> timedelta | None:
    if not run.started_at:
        return None
    return (run.finished_at or timezone.now()) - run.started_at


def fmt_duration(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def short_date(moment) -> str:
    """ "Nov 23, 20:07" (this year) or "2025-11-23" in the site's time zone: short enough for a list column; the full
    timestamp is in the tooltip."""
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    text = local.strftime("%b %d, %H:%M") if local.year == timezone.localtime().year else local.strftime("%Y-%m-%d")
    return format_html('<span class="mt-date" title="{}">{}</span>', local.strftime("%Y-%m-%d %H:%M:%S %Z"), text)


def badge(text: str, tone: str) -> str:
    return format_html('<span class="mt-badge mt-badge--{}">{}</span>', tone, text)


STATUS_TONES = {
    TrainingRun.Status.QUEUED: "muted",
    TrainingRun.Status.RUNNING: "info",
    TrainingRun.Status.SUCCEEDED: "ok",
    TrainingRun.Status.FAILED: "bad",
    TrainingRun.Status.CANCELLED: "warn",
}
VERDICT_TONES = {"recommended": "ok", "promoted": "prod", "rejected": "bad"}


def verdict_badge(verdict: str) -> str:
    if not verdict:
        return "—"
    label = dict(TrainingRun.Verdict.choices).get(verdict, verdict)
    return badge(str(label), VERDICT_TONES.get(verdict, "muted"))


def pretty_json(value: Any) -> str:
    if value in (None, {}, []):
        return "—"
    return format_html('<pre class="mt-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True, default=str))


def _admin_url(name: str, *args) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


_CREDENTIALS_IN_URL = re.compile(r"(\w+://)[^/\s:@]+:[^/\s@]+@")


def _error_text(error: Exception) -> str:
    """What the owner reads: the reason, short, without credentials of a tracking or database URL."""
    text = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error) or error.__class__.__name__
    text = _CREDENTIALS_IN_URL.sub(r"\1***@", text)
    return text if len(text) <= 500 else text[:499] + "…"


def _call_service(request: HttpRequest, action: str, service, **kwargs) -> tuple[bool, Any]:
    """Call one service for an admin page: (True, result), or (False, None) with the reason shown to the owner.

    PermissionDenied passes through (a 403); any other failure becomes a message instead of a 500, because "MLflow
    is down" or "a run is already going" is something the owner must read, not a crash page.
    """
    try:
        return True, service(**kwargs)
    except PermissionDenied:
        raise
    except EXPECTED_ERRORS as error:
        logger.info("admin %s refused: %s", action, error)
        messages.error(request, f"{action} failed: {_error_text(error)}")
    except Exception as error:  # noqa: BLE001 - shown to the owner, logged with the traceback
        logger.exception("admin %s failed", action)
        messages.error(request, f"{action} failed: {_error_text(error)}")
    return False, None


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is shown, never edited by hand: no add, change or delete, for anyone (superusers included)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @property
    def media(self):
        return super().media + ASSETS

    def _page(self, request: HttpRequest, template: str, title: str, **context) -> TemplateResponse:
        """A custom admin page with the admin's chrome (side bar, breadcrumbs, user tools)."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "media": self.media,
            **context,
        }
        return TemplateResponse(request, template, context)


# ---------------------------------------------------------------------------------------------------------------------
# Model versions
# ---------------------------------------------------------------------------------------------------------------------


class RescoreForm(forms.Form):
    SCOPES = [
        ("stale", "Predicted coins whose latest prediction is not from Production"),
        ("all", "All predicted coins"),
        ("version", "Coins whose latest prediction came from one version"),
        ("ids", "These coin ids"),
    ]
    scope = forms.ChoiceField(choices=SCOPES, initial="stale", widget=forms.RadioSelect)
    version = forms.ModelChoiceField(queryset=ModelVersion.objects.all(), required=False, empty_label="(choose)")
    coin_ids = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "12, 15, 40-45"}),
        help_text="Comma or space separated; ranges like 40-45.",
    )

    def clean_coin_ids(self) -> list[int]:
        ids: list[int] = []
        for token in re.split(r"[\s,;]+", self.cleaned_data["coin_ids"].strip()):
            if not token:
                continue
            match = re.fullmatch(r"(\d+)(?:-(\d+))?", token)
            if not match:
                raise ValidationError(f"“{token}” is not a coin id or a range like 40-45.")
            low, high = int(match.group(1)), int(match.group(2) or match.group(1))
            if high < low or high - low > 100_000:
                raise ValidationError(f"“{token}” is not a sensible range.")
            ids.extend(range(low, high + 1))
        return ids

    def clean(self):
        data = super().clean()
        if data.get("scope") == "version" and not data.get("version"):
            self.add_error("version", "Choose the version whose coins to re-score.")
        if data.get("scope") == "ids" and not data.get("coin_ids"):
            self.add_error("coin_ids", "Give at least one coin id.")
        return data

    def coin_ids_selected(self) -> list[int]:
        """The coins the chosen scope covers today."""
        data = self.cleaned_data
        if data["scope"] == "ids":
            coins = Coin.objects.filter(pk__in=data["coin_ids"])
        else:
            coins = rescore_candidates(data["scope"], version=data.get("version"))
        return list(coins.order_by("id").values_list("id", flat=True))


def rescore_candidates(scope: str, *, version: ModelVersion | None = None) -> QuerySet[Coin]:
    """Predicted coins: all of them, those last predicted by `version`, or ("stale") those not last predicted by
    Production."""
    latest_version = Subquery(
        Prediction.objects.filter(coin=OuterRef("pk")).order_by("-created_at", "-id").values("model_version")[:1]
    )
    coins = Coin.objects.filter(status=Coin.Status.PREDICTED).annotate(latest_version=latest_version)
    if scope == "all":
        return coins
    if scope == "version":
        return coins.filter(latest_version=version.pk if version else None)
    production = ModelVersion.objects.filter(is_production=True).first()
    return coins.exclude(latest_version=production.pk) if production else coins


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    """Every registered version with its cross-validation, its comparison with Production, and Promote / Roll back."""

    list_display = (
        "version_label",
        "production_badge",
        "cv_mae_display",
        "baseline_display",
        "ratio_display",
        "r2_display",
        "within_display",
        "coverage_display",
        "verdict_display",
        "created_short",
        "promoted_display",
    )
    list_display_links = ("version_label",)
    search_fields = ("=version", "run_id")
    ordering = ("-version",)
    actions = ["promote_selected", "rollback_production", "rescore_selected_version"]
    fieldsets = (
        (
            "Registry",
            {
                "fields": (
                    "name",
                    "version",
                    "production_badge",
                    "aliases_display",
                    "run_id",
                    "created_at",
                    "promoted_at",
                    "promoted_by",
                )
            },
        ),
        ("Provenance", {"fields": ("training_run_link", "dataset_link", "predictions_count")}),
    )
    readonly_fields = (
        "name",
        "version",
        "production_badge",
        "aliases_display",
        "run_id",
        "created_at",
        "training_run_link",
        "dataset_link",
        "predictions_count",
        "promoted_at",
        "promoted_by",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("training_run", "promoted_by")

    # -- permissions ----------------------------------------------------------------------------------------------

    def has_promote_permission(self, request) -> bool:
        return can_promote(request.user)

    # -- columns --------------------------------------------------------------------------------------------------

    @admin.display(description="version", ordering="version")
    def version_label(self, obj: ModelVersion) -> str:
        return f"{obj.name} v{obj.version}"

    @admin.display(description="Production", ordering="-is_production")
    def production_badge(self, obj: ModelVersion) -> str:
        tags = [badge("production", "prod")] if obj.is_production else []
        tags += [badge(alias, "info") for alias in (obj.aliases or []) if alias != "production"]
        return mark_safe(" ".join(tags)) if tags else "—"

    @admin.display(description="aliases")
    def aliases_display(self, obj: ModelVersion) -> str:
        return ", ".join(obj.aliases or []) or "—"

    @admin.display(description="CV MAE ± std")
    def cv_mae_display(self, obj: ModelVersion) -> str:
        summary = version_summary(obj)
        if summary["mae"] is None:
            return "—"
        if summary["mae_std"] is None:
            return fmt_number(summary["mae"])
        return f"{fmt_number(summary['mae'])} ± {fmt_number(summary['mae_std'])}"

    @admin.display(description="baseline MAE")
    def baseline_display(self, obj: ModelVersion) -> str:
        return fmt_number(version_summary(obj)["baseline_mae"])

    @admin.display(description="MAE / baseline")
    def ratio_display(self, obj: ModelVersion) -> str:
        ratio = version_summary(obj)["ratio"]
        if ratio is None:
            return "—"
        # A model no better than always answering the median year is no model (DESIGN.md, "The model").
        tone = "bad" if ratio >= 1 else "warn" if ratio >= 0.75 else "ok"
        return format_html(
            '<span class="mt-ratio mt-ratio--{}" title="{}">{}×</span>',
            tone,
            "worse than the constant baseline" if ratio >= 1 else "model MAE / baseline MAE",
            f"{ratio:.2f}",
        )

    @admin.display(description="R²")
    def r2_display(self, obj: ModelVersion) -> str:
        return fmt_number(version_summary(obj)["r2"], 3)

    @admin.display(description="±5 / ±10")
    def within_display(self, obj: ModelVersion) -> str:
        summary = version_summary(obj)
        return f"{fmt_share(summary['within_5'])} / {fmt_share(summary['within_10'])}"

    @admin.display(description="coverage")
    def coverage_display(self, obj: ModelVersion) -> str:
        summary = version_summary(obj)
        if summary["coverage"] is None:
            return "—"
        level = f" of {fmt_share(summary['interval_level'])}" if summary["interval_level"] is not None else ""
        return f"{fmt_share(summary['coverage'])}{level}"

    @admin.display(description="verdict", ordering="training_run__verdict")
    def verdict_display(self, obj: ModelVersion) -> str:
        return verdict_badge(obj.training_run.verdict) if obj.training_run else "—"

    @admin.display(description="registered", ordering="created_at")
    def created_short(self, obj: ModelVersion) -> str:
        return short_date(obj.created_at)

    @admin.display(description="promoted", ordering="promoted_at")
    def promoted_display(self, obj: ModelVersion) -> str:
        if not obj.promoted_at:
            return "—"
        who = f" by {obj.promoted_by.get_username()}" if obj.promoted_by else ""
        return format_html(
            '<span title="{} ago">{}{}</span>', timesince(obj.promoted_at), short_date(obj.promoted_at), who
        )

    @admin.display(description="training run")
    def training_run_link(self, obj: ModelVersion) -> str:
        run = obj.training_run
        if not run:
            return "— (registered outside a training run, e.g. `manage.py train`)"
        url = reverse("admin:training_trainingrun_change", args=[run.pk])
        return format_html('<a href="{}">{}</a> {}', url, str(run), verdict_badge(run.verdict))

    @admin.display(description="training data")
    def dataset_link(self, obj: ModelVersion) -> str:
        run = obj.training_run
        links = []
        for label, dataset in (
            ("training", run and run.dataset_version),
            ("evaluation", run and run.evaluation_dataset),
        ):
            if dataset:
                url = reverse("admin:training_datasetversion_change", args=[dataset.pk])
                links.append(format_html('{}: <a href="{}">{}</a>', label, url, str(dataset)))
        return mark_safe("<br>".join(links)) if links else "—"

    @admin.display(description="predictions made")
    def predictions_count(self, obj: ModelVersion) -> int:
        return obj.predictions.count()

    # -- pages ----------------------------------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("rollback/", wrap(self.rollback_view), name=f"{info}_rollback"),
            path("rescore/", wrap(self.rescore_view), name=f"{info}_rescore"),
            path("movers/", wrap(self.movers_view), name=f"{info}_movers"),
            path("<int:pk>/promote/", wrap(self.promote_view), name=f"{info}_promote"),
            path("<int:pk>/artifact/<path:artifact>", wrap(self.artifact_view), name=f"{info}_artifact"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        production = ModelVersion.objects.filter(is_production=True).first()
        extra_context = {
            **(extra_context or {}),
            "production": production,
            "can_promote": can_promote(request.user),
            "can_review": can_review(request.user),
            "rollback_target": rollback_target(),
        }
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, object_id)
        if version is None:
            return super().change_view(request, object_id, form_url, extra_context)
        run = version.training_run
        production = ModelVersion.objects.filter(name=version.name, is_production=True).first()
        extra_context = {
            **(extra_context or {}),
            "version": version,
            "summary": version_summary(version),
            "folds": version_folds(version),
            "comparison": comparison_view(run.comparison if run else None, verdict=run.verdict if run else ""),
            "plots": self.plots(version),
            "production": production,
            "rollback_target": rollback_target() if version.is_production else None,
            "can_promote": can_promote(request.user),
            "show_save": False,
            "title": f"{version.name} v{version.version}",
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def plots(self, version: ModelVersion) -> dict:
        """The run's plots as URLs of artifact_view. The page itself never calls MLflow (a tracking server that is down
        would hang it on retries); each image is fetched by the browser, and a missing one shows a placeholder."""
        run_id = version.run_id or (version.training_run.mlflow_run_id if version.training_run else "")
        if not run_id:
            return {"items": [], "error": "This version has no MLflow run id, so there are no plots to show."}
        items = [
            {
                "path": artifact,
                "title": PurePosixPath(artifact).stem.replace("_", " ").replace("-", " "),
                "url": reverse("admin:training_modelversion_artifact", args=[version.pk, artifact]),
                "wide": any(word in artifact.lower() for word in ("learning", "curve", "decade")),
            }
            for artifact in plot_paths()
        ]
        return {"items": items, "error": ""}

    def artifact_view(self, request: HttpRequest, pk: int, artifact: str) -> HttpResponse:
        """Streams one image artifact of the version's own run (never another run's, never a path outside it)."""
        version = get_object_or_404(ModelVersion, pk=pk)
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        run_id = version.run_id or (version.training_run.mlflow_run_id if version.training_run else "")
        parts = PurePosixPath(artifact).parts
        if (
            not run_id
            or not parts
            or ".." in parts
            or artifact.startswith("/")
            or not artifact.lower().endswith(".png")
        ):
            raise Http404("No such plot.")
        with tempfile.TemporaryDirectory(prefix="coinsite-admin-artifact-") as folder:
            try:
                local = Path(_registry_download_artifact(run_id, artifact, folder))
                data = local.read_bytes() if local.is_file() else None
            except Exception as error:  # noqa: BLE001 - missing artifact or MLflow down: a 404, not a 500
                logger.info("artifact %s of run %s not available: %s", artifact, run_id, error)
                raise Http404("This plot is not available.") from error
        if data is None:
            raise Http404("This plot is not available.")
        response = HttpResponse(data, content_type=mimetypes.guess_type(artifact)[0] or "image/png")
        response["Cache-Control"] = "private, max-age=3600"  # artifacts of a finished run never change
        response["X-Content-Type-Options"] = "nosniff"
        return response

    def promote_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return require_POST(self._promote)(request, pk)

    def _promote(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not can_promote(request.user):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=pk)
        self._do_promote(request, version)
        return HttpResponseRedirect(reverse("admin:training_modelversion_change", args=[version.pk]))

    def _do_promote(self, request: HttpRequest, version: ModelVersion) -> bool:
        if version.name != settings.MLFLOW_MODEL_NAME:
            messages.error(request, f"{version} is not a version of {settings.MLFLOW_MODEL_NAME}, the served model.")
            return False
        done, _ = _call_service(
            request, f"Promoting {version}", services.model_version_promote, version=version.version, actor=request.user
        )
        if not done:
            return False
        rescore = reverse("admin:training_modelversion_rescore")
        messages.success(
            request,
            format_html(
                'Production is now {}. Coins predicted before keep their prediction: <a href="{}">re-score them</a>.',
                version,
                rescore,
            ),
        )
        return True

    def rollback_view(self, request: HttpRequest) -> HttpResponse:
        return require_POST(self._rollback)(request)

    def _rollback(self, request: HttpRequest) -> HttpResponse:
        if not can_promote(request.user):
            raise PermissionDenied
        self._do_rollback(request)
        production = ModelVersion.objects.filter(is_production=True).first()
        target = reverse("admin:training_modelversion_change", args=[production.pk]) if production else None
        return HttpResponseRedirect(target or reverse("admin:training_modelversion_changelist"))

    def _do_rollback(self, request: HttpRequest) -> bool:
        done, promotion = _call_service(request, "Rolling back", services.model_version_rollback, actor=request.user)
        if not done:
            return False
        messages.success(
            request, f"Rolled back: Production is now {promotion.to_version} (was {promotion.from_version or '—'})."
        )
        return True

    def rescore_view(self, request: HttpRequest) -> HttpResponse:
        if not can_promote(request.user):
            raise PermissionDenied
        production = ModelVersion.objects.filter(is_production=True).first()
        initial = {}
        if request.GET.get("version"):
            initial = {"scope": "version", "version": request.GET["version"]}
        form = RescoreForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            coin_ids = form.coin_ids_selected()
            if not coin_ids:
                messages.warning(request, "No coin matches that choice; nothing was re-scored.")
            else:
                done, result = _call_service(request, "Re-scoring", services.coins_rescore, coin_ids=coin_ids)
                if done:
                    count = result if isinstance(result, int) else len(coin_ids)
                    messages.success(
                        request,
                        f"Re-scoring {count} coin{'s' if count != 1 else ''} with {production or 'Production'} "
                        "(in the background); the coins whose year moved most appear here as their new predictions "
                        "come in.",
                    )
                    previous = rollback_target()
                    since = f"?since={previous.version}" if previous else ""
                    return HttpResponseRedirect(reverse("admin:training_modelversion_movers") + since)
        counts = {"predicted": rescore_candidates("all").count(), "stale": rescore_candidates("stale").count()}
        return self._page(
            request,
            "admin/training/modelversion/rescore.html",
            "Re-score coins with Production",
            form=form,
            production=production,
            counts=counts,
        )

    def movers_view(self, request: HttpRequest) -> HttpResponse:
        """Coins whose predicted year moved most with the new version: the curators' work list after a re-score."""
        if not (can_review(request.user) or can_promote(request.user)):
            raise PermissionDenied
        production = ModelVersion.objects.filter(is_production=True).first()
        versions = ModelVersion.objects.filter(name=settings.MLFLOW_MODEL_NAME).order_by("-version")
        since = _movers_default_since(versions)
        if request.GET.get("since"):
            number = request.GET["since"]
            since = versions.filter(version=int(number)).first() if number.isdigit() else None
            if since is None:
                raise Http404("No such model version.")
        rows, error = [], ""
        if since is not None:
            try:
                rows = [_mover_row(item) for item in services.rescore_movers(since_version=since.version)]
                verified = dict(
                    Coin.objects.filter(pk__in=[row["coin_id"] for row in rows]).values_list("id", "verified_year")
                )
                for row in rows:
                    row["verified_year"] = _first(row["verified_year"], verified.get(row["coin_id"]))
            except Exception as exc:  # noqa: BLE001 - a list page must render; the reason is shown
                logger.exception("rescore_movers failed")
                error = _error_text(exc)
        return self._page(
            request,
            "admin/training/modelversion/movers.html",
            "Coins whose year moved most",
            rows=rows,
            since=since,
            production=production,
            versions=versions,
            error=error,
            can_promote=can_promote(request.user),
        )

    # -- admin actions (the changelist's drop-down) -----------------------------------------------------------------

    @admin.action(description="Promote the selected version to Production", permissions=["promote"])
    def promote_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.WARNING)
            return None
        self._do_promote(request, queryset.get())
        return None

    @admin.action(
        description="Roll back Production to the version before it (select the Production version)",
        permissions=["promote"],
    )
    def rollback_production(self, request, queryset):
        if not queryset.filter(is_production=True).exists():
            self.message_user(request, "Select the current Production version to roll it back.", messages.WARNING)
            return None
        self._do_rollback(request)
        return None

    @admin.action(description="Re-score the coins last predicted by the selected version", permissions=["promote"])
    def rescore_selected_version(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version whose coins to re-score.", messages.WARNING)
            return None
        url = reverse("admin:training_modelversion_rescore")
        return HttpResponseRedirect(f"{url}?version={queryset.get().pk}")


def rollback_target() -> ModelVersion | None:
    """The version a rollback would put back (the one that served before the current Production), if any."""
    try:
        stack = services.production_history()
    except Exception:  # noqa: BLE001 - only a hint on a button
        logger.warning("could not read the production history", exc_info=True)
        return None
    if len(stack) < 2:
        return None
    return ModelVersion.objects.filter(name=settings.MLFLOW_MODEL_NAME, version=stack[-2]).first()


def _movers_default_since(versions: QuerySet[ModelVersion]) -> ModelVersion | None:
    """The newest version whose coins were re-scored by a later one (what the owner just did), else the one a
    rollback would restore."""
    for version in versions[:20]:
        rescored = Prediction.objects.filter(
            model_version=version,
            coin__predictions__model_version__name=version.name,
            coin__predictions__model_version__version__gt=version.version,
        )
        if rescored.exists():
            return version
    target = rollback_target()
    return target if target is not None else next(iter(versions[1:2]), None)


def plot_paths() -> list[str]:
    """The PNGs every training run logs (training.ml.registry names them): learning curves and error by decade (wide),
    then predicted vs true."""
    try:
        from training.ml import registry

        return [registry.LEARNING_CURVES_PNG, registry.ERROR_BY_DECADE_PNG, registry.PRED_VS_TRUE_PNG]
    except (ImportError, AttributeError):  # the ML stack is not importable here: the names as registry.py writes them
        return ["plots/learning_curves.png", "plots/error_by_decade.png", "plots/predicted_vs_true.png"]


def _registry_download_artifact(run_id: str, artifact: str, folder: str) -> str:
    from training.ml import registry

    from .mlflow_access import mlflow_ready

    mlflow_ready()
    return registry.download_artifact(run_id, artifact, dst_path=folder)


def _mover_row(item: Any) -> dict:
    """One row of rescore_movers(), whatever it returns (dicts, objects or Coins annotated with old/new years)."""
    get = item.get if isinstance(item, dict) else lambda key, default=None: getattr(item, key, default)
    coin = get("coin")
    coin_id = get("coin_id") or (coin.pk if coin is not None else None) or (item.pk if isinstance(item, Coin) else None)
    old, new = get("old_year"), get("new_year")
    delta = new - old if old is not None and new is not None else get("delta", get("moved"))
    return {
        "coin_id": coin_id,
        "coin_url": _admin_url("admin:predictions_coin_change", coin_id) if coin_id else None,
        "old_year": old,
        "new_year": new,
        "delta": delta,
        "old_version": get("old_version"),
        "new_version": get("new_version"),
        "verified_year": get("verified_year"),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Training runs
# ---------------------------------------------------------------------------------------------------------------------


class StartTrainingForm(forms.Form):
    overrides = forms.CharField(
        required=False,
        label="Overrides (--set)",
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "epochs=10\nbackbone=resnet18", "spellcheck": "false"}),
        help_text="One key=value per line, like `manage.py retrain --set key=value`; values are read as YAML.",
    )
    fine_tune = forms.BooleanField(
        required=False,
        label="Fine-tune Production",
        help_text="Start from Production's weights for a few epochs, checking the evaluation set after each; "
        "a regression stops the run and discards the candidate.",
    )

    def clean_overrides(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["overrides"].splitlines() if line.strip()]
        for line in lines:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*\s*=.*", line):
                raise ValidationError(f"“{line}” is not key=value.")
        return [re.sub(r"\s*=\s*", "=", line, count=1) for line in lines]

    # Which form field a key of the service's ValidationError belongs to.
    SERVICE_FIELDS = {"config": "overrides", "overrides": "overrides", "fine_tune": "fine_tune"}

    def add_service_error(self, error: ValidationError) -> None:
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for key, errors in error.error_dict.items():
            self.add_error(self.SERVICE_FIELDS.get(key), errors)


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    """Training runs as they happen: status, progress, duration, verdict and error; Start training and Cancel."""

    list_display = (
        "run_label",
        "status_with_error",
        "progress_bar",
        "duration_display",
        "dataset_short",
        "result_display",
        "created_by",
    )
    list_display_links = ("run_label",)
    list_filter = ("status", "verdict")
    search_fields = ("=id", "mlflow_run_id", "error")
    actions = ["cancel_selected"]
    fieldsets = (
        (None, {"fields": ("status_badge", "progress_bar", "verdict_display", "model_version_link", "error_display")}),
        (
            "When",
            {
                "fields": (
                    "requested_display",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "duration_display",
                    "heartbeat_display",
                    "cancel_requested",
                )
            },
        ),
        (
            "Data and configuration",
            {"fields": ("dataset_display", "evaluation_display", "fine_tune", "mlflow_run_id", "config_display")},
        ),
        ("Metrics", {"fields": ("metrics_display", "comparison_display"), "classes": ("collapse",)}),
    )
    readonly_fields = (
        "status_badge",
        "progress_bar",
        "verdict_display",
        "model_version_link",
        "error_display",
        "requested_display",
        "created_at",
        "started_at",
        "finished_at",
        "duration_display",
        "heartbeat_display",
        "cancel_requested",
        "dataset_display",
        "evaluation_display",
        "fine_tune",
        "mlflow_run_id",
        "config_display",
        "metrics_display",
        "comparison_display",
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("dataset_version", "evaluation_dataset", "requested_by", "model_version")
        )

    def has_train_permission(self, request) -> bool:
        return can_train(request.user)

    # -- columns --------------------------------------------------------------------------------------------------

    @admin.display(description="run", ordering="id")
    def run_label(self, obj: TrainingRun) -> str:
        if obj.fine_tune:
            return format_html('#{} <span class="mt-badge mt-badge--muted">fine-tune</span>', obj.pk)
        return f"#{obj.pk}"

    @admin.display(description="status", ordering="status")
    def status_with_error(self, obj: TrainingRun) -> str:
        """The status badge, with the error's last line under it when the run failed."""
        return format_html("{}{}", self.status_badge(obj), self.error_short(obj))

    @admin.display(description="result", ordering="verdict")
    def result_display(self, obj: TrainingRun) -> str:
        version = getattr(obj, "model_version", None)
        if version is None:
            return verdict_badge(obj.verdict)
        return format_html("{} {}", self.model_version_link(obj), verdict_badge(obj.verdict))

    @admin.display(description="by", ordering="requested_by")
    def requested_display(self, obj: TrainingRun) -> str:
        return obj.requested_by.get_username() if obj.requested_by else "schedule"

    @admin.display(description="created", ordering="created_at")
    def created_by(self, obj: TrainingRun) -> str:
        return format_html(
            '{}<span class="mt-muted mt-small">by {}</span>', short_date(obj.created_at), self.requested_display(obj)
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: TrainingRun) -> str:
        text = obj.get_status_display()
        if obj.cancel_requested and obj.status in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING):
            text += " (cancelling)"
        return badge(text, STATUS_TONES.get(obj.status, "muted"))

    @admin.display(description="progress")
    def progress_bar(self, obj: TrainingRun) -> str:
        progress = run_progress(obj)
        if obj.status == TrainingRun.Status.QUEUED:
            return "waiting"
        if not progress["known"] and obj.status != TrainingRun.Status.RUNNING:
            return "—"
        return format_html(
            '<span class="mt-progress mt-progress--{}" title="{}% done{}">'
            '<span class="mt-progress__bar" style="width:{}%"></span></span>'
            '<span class="mt-progress__label">{}</span>{}',
            obj.status,
            f"{progress['percent']:.0f}",
            f" · {progress['details']}" if progress["details"] else "",
            f"{progress['percent']:.1f}",
            progress["label"] or f"{progress['percent']:.0f}%",
            format_html('<span class="mt-progress__label mt-progress__details">{}</span>', progress["details"])
            if progress["details"] and obj.status == TrainingRun.Status.RUNNING
            else "",
        )

    @admin.display(description="duration")
    def duration_display(self, obj: TrainingRun) -> str:
        return fmt_duration(run_duration(obj))

    @admin.display(description="last heartbeat")
    def heartbeat_display(self, obj: TrainingRun) -> str:
        beat = getattr(obj, "heartbeat_at", None)
        return f"{timesince(beat)} ago" if beat else "—"

    @admin.display(description="dataset", ordering="dataset_version")
    def dataset_display(self, obj: TrainingRun) -> str:
        return self._dataset(obj.dataset_version)

    @admin.display(description="data", ordering="dataset_version")
    def dataset_short(self, obj: TrainingRun) -> str:
        dataset = obj.dataset_version
        if dataset is None:
            return "—"
        url = reverse("admin:training_datasetversion_change", args=[dataset.pk])
        return format_html(
            '<a href="{}" title="dataset #{}, {} coins">{} coins</a>',
            url,
            dataset.pk,
            dataset.coin_count,
            dataset.coin_count,
        )

    @admin.display(description="evaluation set")
    def evaluation_display(self, obj: TrainingRun) -> str:
        return self._dataset(obj.evaluation_dataset)

    def _dataset(self, dataset: DatasetVersion | None) -> str:
        if dataset is None:
            return "—"
        url = reverse("admin:training_datasetversion_change", args=[dataset.pk])
        return format_html(
            '<a href="{}" title="{}">#{} · {} coins</a>', url, dataset.content_hash, dataset.pk, dataset.coin_count
        )

    @admin.display(description="verdict", ordering="verdict")
    def verdict_display(self, obj: TrainingRun) -> str:
        return verdict_badge(obj.verdict)

    @admin.display(description="model version")
    def model_version_link(self, obj: TrainingRun) -> str:
        version = getattr(obj, "model_version", None)
        if version is None:
            return "—"
        url = reverse("admin:training_modelversion_change", args=[version.pk])
        return format_html('<a href="{}">v{}</a>', url, version.version)

    @admin.display(description="error")
    def error_short(self, obj: TrainingRun) -> str:
        if not obj.error:
            return ""
        first = obj.error.strip().splitlines()[-1] if obj.error.strip() else ""
        return format_html(
            '<span class="mt-error mt-error--short" title="{}">{}</span>',
            obj.error[:2000],
            first[:80] + ("…" if len(first) > 80 else ""),
        )

    @admin.display(description="error")
    def error_display(self, obj: TrainingRun) -> str:
        return format_html('<pre class="mt-json mt-error">{}</pre>', obj.error) if obj.error else "—"

    @admin.display(description="config")
    def config_display(self, obj: TrainingRun) -> str:
        return pretty_json(obj.config)

    @admin.display(description="metrics (raw)")
    def metrics_display(self, obj: TrainingRun) -> str:
        return pretty_json(obj.metrics)

    @admin.display(description="comparison (raw)")
    def comparison_display(self, obj: TrainingRun) -> str:
        return pretty_json(obj.comparison)

    # -- pages ----------------------------------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("start/", wrap(self.start_view), name=f"{info}_start"),
            path("<int:pk>/cancel/", wrap(self.cancel_view), name=f"{info}_cancel"),
        ] + super().get_urls()

    def _active(self) -> bool:
        return TrainingRun.objects.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]).exists()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_train": can_train(request.user), "autorefresh": self._active()}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra_context = {**(extra_context or {}), "can_train": can_train(request.user), "show_save": False}
        if run is not None:
            extra_context.update(
                run=run,
                cancellable=run.status in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING),
                autorefresh=run.status in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING),
                comparison=comparison_view(run.comparison, verdict=run.verdict),
                title=str(run),
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not can_train(request.user):
            raise PermissionDenied
        form = StartTrainingForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                run = services.training_run_start(
                    requested_by=request.user,
                    overrides=form.cleaned_data["overrides"],
                    fine_tune=form.cleaned_data["fine_tune"],
                )
            except ValidationError as error:
                form.add_service_error(error)
            except EXPECTED_ERRORS as error:
                form.add_error(None, _error_text(error))
            else:
                messages.success(request, f"{run} queued: it runs on the training queue; this page follows it.")
                return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[run.pk]))
        active = TrainingRun.objects.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING])
        return self._page(
            request,
            "admin/training/trainingrun/start.html",
            "Start training",
            form=form,
            active_runs=list(active),
            default_config=_default_config_text(),
            auto_promote=settings.AUTO_PROMOTE,
            eager=settings.CELERY_TASK_ALWAYS_EAGER,
            production=ModelVersion.objects.filter(is_production=True).first(),
        )

    def cancel_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return require_POST(self._cancel)(request, pk)

    def _cancel(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not can_train(request.user):
            raise PermissionDenied
        run = get_object_or_404(TrainingRun, pk=pk)
        self._do_cancel(request, run)
        return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[run.pk]))

    def _do_cancel(self, request: HttpRequest, run: TrainingRun) -> bool:
        label = f"Training run #{run.pk}"
        done, run = _call_service(
            request, f"Cancelling {label}", services.training_run_cancel, run=run, actor=request.user
        )
        if not done:
            return False
        if run.status == TrainingRun.Status.CANCELLED:
            messages.success(request, f"{label} cancelled; Production is unchanged.")
        elif run.status == TrainingRun.Status.RUNNING:
            messages.success(
                request, f"{label}: cancel requested; it stops at its next check. Production is unchanged."
            )
        else:
            messages.warning(request, f"{label} had already ended ({run.get_status_display().lower()}).")
        return True

    @admin.action(description="Cancel the selected runs (queued or running)", permissions=["train"])
    def cancel_selected(self, request, queryset):
        active = queryset.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING])
        if not active.exists():
            self.message_user(request, "None of the selected runs is queued or running.", messages.WARNING)
        for run in active:
            self._do_cancel(request, run)


def _default_config_text() -> str:
    try:
        return Path(settings.TRAINING_CONFIG_PATH).read_text(encoding="utf-8")[:5000]
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------------------------------
# Datasets and the promotion history
# ---------------------------------------------------------------------------------------------------------------------


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
    """Frozen training and evaluation sets: what a run learned from, identified by content hash."""

    MANIFEST_PREVIEW_ROWS = 25

    list_display = ("dataset_label", "kind", "coin_count", "years", "hash_short", "runs", "created_short")
    list_filter = ("kind",)
    search_fields = ("content_hash",)
    fields = (
        "kind",
        "content_hash",
        "coin_count",
        "years",
        "weighted",
        "created_at",
        "used_by",
        "decades",
        "manifest_preview",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                training_uses=Count("training_runs", distinct=True),
                evaluation_uses=Count("evaluation_runs", distinct=True),
            )
        )

    @admin.display(description="dataset", ordering="id")
    def dataset_label(self, obj: DatasetVersion) -> str:
        return f"#{obj.pk}"

    @admin.display(description="frozen", ordering="created_at")
    def created_short(self, obj: DatasetVersion) -> str:
        return short_date(obj.created_at)

    @admin.display(description="years")
    def years(self, obj: DatasetVersion) -> str:
        return f"{obj.year_min}–{obj.year_max}" if obj.year_min is not None else "—"

    @admin.display(description="content hash")
    def hash_short(self, obj: DatasetVersion) -> str:
        return format_html('<code title="{}">{}…</code>', obj.content_hash, obj.content_hash[:12])

    @admin.display(description="runs")
    def runs(self, obj: DatasetVersion) -> str:
        return f"{getattr(obj, 'training_uses', 0)} training · {getattr(obj, 'evaluation_uses', 0)} evaluation"

    def _rows(self, obj: DatasetVersion) -> list[dict]:
        return [row for row in (obj.manifest or []) if isinstance(row, dict)]

    @admin.display(description="hard examples (weight > 1)")
    def weighted(self, obj: DatasetVersion) -> int:
        return sum(1 for row in self._rows(obj) if (_number(row.get("weight")) or 1) > 1)

    @admin.display(description="used by")
    def used_by(self, obj: DatasetVersion) -> str:
        runs = TrainingRun.objects.filter(Q(dataset_version=obj) | Q(evaluation_dataset=obj)).order_by("-id")[:20]
        if not runs:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">#{}</a>',
            ((reverse("admin:training_trainingrun_change", args=[r.pk]), r.pk) for r in runs),
        )

    @admin.display(description="coins per decade")
    def decades(self, obj: DatasetVersion) -> str:
        counts: dict[int, int] = {}
        for row in self._rows(obj):
            year = _number(row.get("year"))
            if year is not None:
                counts[int(year) // 10 * 10] = counts.get(int(year) // 10 * 10, 0) + 1
        if not counts:
            return "—"
        top = max(counts.values())
        bars = format_html_join(
            "",
            '<div class="mt-hist__row"><span class="mt-hist__label">{}s</span>'
            '<span class="mt-hist__bar" style="width:{}%"></span><span class="mt-hist__value">{}</span></div>',
            ((decade, f"{100 * n / top:.1f}", n) for decade, n in sorted(counts.items())),
        )
        return format_html('<div class="mt-hist">{}</div>', bars)

    @admin.display(description="manifest")
    def manifest_preview(self, obj: DatasetVersion) -> str:
        rows = self._rows(obj)
        if not rows:
            return "— (empty)"
        shown = rows[: self.MANIFEST_PREVIEW_ROWS]
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            (
                (
                    row.get("coin_id", "—"),
                    row.get("year", "—"),
                    fmt_number(row.get("weight", 1), 1),
                    str(row.get("front_sha256", ""))[:12],
                    str(row.get("back_sha256", ""))[:12],
                )
                for row in shown
            ),
        )
        more = f"… and {len(rows) - len(shown)} more rows" if len(rows) > len(shown) else ""
        return format_html(
            '<table class="mt-table"><thead><tr><th>coin</th><th>year</th><th>weight</th><th>front SHA-256</th>'
            '<th>back SHA-256</th></tr></thead><tbody>{}</tbody></table><p class="help">{}</p>',
            body,
            more,
        )


@admin.register(Promotion)
class PromotionAdmin(ReadOnlyAdmin):
    """Which version served when: every move of the production alias, newest first, with who did it."""

    list_display = ("when", "action_badge", "from_display", "to_display", "served_until", "served_for", "actor_display")
    list_filter = ("action",)
    ordering = ("-created_at", "-id")
    fields = ("name", "action", "from_version", "to_version", "actor", "created_at")
    readonly_fields = fields
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        following = Promotion.objects.filter(name=OuterRef("name")).filter(
            Q(created_at__gt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), id__gt=OuterRef("id"))
        )
        return (
            super()
            .get_queryset(request)
            .select_related("from_version", "to_version", "actor")
            .annotate(ended_at=Subquery(following.order_by("created_at", "id").values("created_at")[:1]))
        )

    @admin.display(description="when", ordering="created_at")
    def when(self, obj: Promotion) -> str:
        return short_date(obj.created_at)

    @admin.display(description="action", ordering="action")
    def action_badge(self, obj: Promotion) -> str:
        tone = {"rollback": "warn", "auto": "info", "initial": "muted"}.get(obj.action, "prod")
        return badge(obj.get_action_display(), tone)

    @admin.display(description="from")
    def from_display(self, obj: Promotion) -> str:
        return self._version(obj.from_version)

    @admin.display(description="to (served from then)")
    def to_display(self, obj: Promotion) -> str:
        return self._version(obj.to_version)

    def _version(self, version: ModelVersion | None) -> str:
        if version is None:
            return "—"
        return format_html(
            '<a href="{}">v{}</a>', reverse("admin:training_modelversion_change", args=[version.pk]), version.version
        )

    @admin.display(description="who", ordering="actor")
    def actor_display(self, obj: Promotion) -> str:
        return obj.actor.get_username() if obj.actor else "system"

    @admin.display(description="until")
    def served_until(self, obj: Promotion) -> str:
        ended = getattr(obj, "ended_at", None)
        return badge("serving now", "prod") if ended is None else short_date(ended)

    @admin.display(description="served for")
    def served_for(self, obj: Promotion) -> str:
        ended = getattr(obj, "ended_at", None) or timezone.now()
        return fmt_duration(ended - obj.created_at)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "timeline": promotion_timeline()}
        return super().changelist_view(request, extra_context)


def promotion_timeline(limit: int = 30) -> list[dict]:
    """The last `limit` serving periods, oldest first, with each one's share of the whole span (for a bar)."""
    moves = list(Promotion.objects.select_related("to_version").order_by("-created_at", "-id")[:limit])[::-1]
    if not moves:
        return []
    now = timezone.now()
    span = max((now - moves[0].created_at).total_seconds(), 1)
    periods = []
    for index, move in enumerate(moves):
        end = moves[index + 1].created_at if index + 1 < len(moves) else now
        seconds = max((end - move.created_at).total_seconds(), 0)
        periods.append(
            {
                "version": move.to_version.version,
                "action": move.action,
                "start": move.created_at,
                "end": end,
                "current": index + 1 == len(moves),
                "width": max(100 * seconds / span, 0.8),
                "duration": fmt_duration(end - move.created_at),
            }
        )
    return periods
