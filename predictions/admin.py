"""The curators' review queue, and read-only views of predictions and corrections, in the Django admin.

Curators (permission predictions.review_coin) work the Coin changelist, whose default view is the queue of coins
awaiting review, and a review page per coin with a keyboard flow (Enter confirms, digits + Enter correct, U marks the
photos unusable, Escape skips). Every decision goes through services.coin_correct(), the only way a year becomes a
training label. Other staff with view permission may look at coins but never decide; nobody edits the audit trail.
"""

from __future__ import annotations

import copy

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from . import selectors, services
from .models import YEAR_MAX, YEAR_MIN, Coin, Correction, Prediction
from .roles import can_review

QUEUE_ORDERS = {
    "oldest": ("created_at", "id"),
    "widest": (F("interval_width").desc(nulls_last=True), "created_at", "id"),
    "newest": ("-created_at", "-id"),
}
DEFAULT_ORDER = "oldest"


def _image_url(coin: Coin, side: str, *, thumb: bool = False) -> str:
    """The site's permission-checked photo view (media is never public); curators and staff may use it."""
    url = reverse("coin-image", kwargs={"coin_id": coin.pk, "side": side})
    return f"{url}?size=thumb" if thumb else url


class _DefaultChoiceFilter(admin.SimpleListFilter):
    """A filter with a default choice instead of "All": no parameter in the URL means `default`."""

    default: str = ""

    def value(self):
        return super().value() or self.default

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


class ReviewStateFilter(_DefaultChoiceFilter):
    """Opening the coin list shows the queue (awaiting review); the other states are a click away."""

    title = "review state"
    parameter_name = "state"
    default = "awaiting"

    def lookups(self, request, model_admin):
        return [
            ("awaiting", "Awaiting review"),
            ("verified", "Verified"),
            ("excluded", "Excluded from training"),
            ("all", "All coins"),
        ]

    def queryset(self, request, queryset):
        match self.value():
            case "awaiting":
                return queryset.filter(selectors.AWAITING_REVIEW)
            case "verified":
                return queryset.filter(verified_year__isnull=False)
            case "excluded":
                return queryset.filter(excluded_from_training=True)
            case "all":
                return queryset
        raise IncorrectLookupParameters(f"Unknown review state {self.value()!r}.")


class QueueOrderFilter(_DefaultChoiceFilter):
    """Which coin comes next: oldest first (fair), or widest interval first (where the model is least sure).

    The ordering itself is applied by CoinAdmin.get_ordering(), so the review page's "next coin" follows it too.
    """

    title = "order"
    parameter_name = "order"
    default = DEFAULT_ORDER

    def lookups(self, request, model_admin):
        return [("oldest", "Oldest first"), ("widest", "Widest interval first"), ("newest", "Newest first")]

    def queryset(self, request, queryset):
        if self.value() not in QUEUE_ORDERS:
            raise IncorrectLookupParameters(f"Unknown order {self.value()!r}.")
        return queryset


class DecadeFilter(admin.SimpleListFilter):
    """Decade of the latest predicted year (only decades some prediction falls in are offered)."""

    title = "decade of the predicted year"
    parameter_name = "decade"

    def lookups(self, request, model_admin):
        return [(str(decade), f"{decade}s") for decade in selectors.prediction_decades()]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        try:
            decade = int(self.value())
        except ValueError as error:
            raise IncorrectLookupParameters(f"Not a decade: {self.value()!r}.") from error
        return queryset.filter(pred_year__gte=decade, pred_year__lt=decade + 10)


class QueueChangeList(ChangeList):
    """Column headers mark the queue's actual order (Interval ▼ for "widest first"), not the class default."""

    def get_ordering(self, request, queryset):
        self.queue_ordering = self.model_admin.get_ordering(request)
        return super().get_ordering(request, queryset)

    def _get_default_ordering(self):
        return getattr(self, "queue_ordering", None) or super()._get_default_ordering()


class CoinReviewForm(forms.Form):
    """One field for the whole decision: empty confirms `confirm_year`, four digits correct it."""

    year = forms.CharField(
        required=False,
        max_length=4,
        widget=forms.TextInput(
            attrs={
                "autofocus": True,
                "autocomplete": "off",
                "inputmode": "numeric",
                "pattern": "[0-9]{4}",
                "maxlength": 4,
                "size": 6,
                "class": "review-year",
            }
        ),
    )
    exclude = forms.BooleanField(required=False, label="Unusable photo: exclude from training")

    def __init__(self, *args, confirm_year: int | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.confirm_year = confirm_year
        self.fields["year"].widget.attrs["placeholder"] = str(confirm_year) if confirm_year else "year"

    def clean_year(self) -> int | None:
        text = self.cleaned_data["year"].strip()
        if not text:
            return None
        if not text.isdigit():
            raise ValidationError(f"Type the year as digits, e.g. 1874 (got {text!r}).")
        year = int(text)
        if not YEAR_MIN <= year <= YEAR_MAX:
            raise ValidationError(f"The year must be between {YEAR_MIN} and {YEAR_MAX} (got {year}).")
        return year

    def clean(self):
        cleaned = super().clean()
        if "year" in cleaned and cleaned["year"] is None and not cleaned.get("exclude"):
            if self.confirm_year is None:
                self.add_error("year", "This coin has no predicted year to confirm: type the year.")
            else:
                cleaned["year"] = self.confirm_year
        return cleaned


class ReadOnlyMixin:
    """Shown, never written through the admin (by anyone, superusers included): history (predictions, corrections,
    training runs, versions) changes only through the services. Mixed into a ModelAdmin or an inline, here and in
    the training admin."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class CorrectionInline(ReadOnlyMixin, admin.TabularInline):
    """Earlier decisions on the coin's read-only page (for staff who may view corrections)."""

    model = Correction
    fields = ("created_at", "curator", "old_year", "new_year", "excluded")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(Coin)
class CoinAdmin(admin.ModelAdmin):
    list_display = (
        "coin_label",
        "thumbnails",
        "predicted_year",
        "interval",
        "model_version",
        "source",
        "age",
        "owner",
        "state",
    )
    list_display_links = ("coin_label", "thumbnails")
    list_filter = (ReviewStateFilter, QueueOrderFilter, "source", DecadeFilter)
    list_select_related = ("owner",)
    search_fields = ("id", "owner__username")  # shows the search box; get_search_results() does the work
    search_help_text = "A coin id (42 or #42) or the owner's username."
    list_per_page = 50
    ordering = QUEUE_ORDERS[DEFAULT_ORDER]  # what the column headers show as the default sort
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["confirm_predicted_year"]
    fields = (
        "photos",
        "owner",
        "source",
        "status",
        "status_detail",
        "prediction_summary",
        "verified_year",
        "verified_at",
        "excluded_from_training",
        "notes",
        "created_at",
    )
    readonly_fields = fields
    inlines = [CorrectionInline]

    class Media:
        css = {"all": ["admin-review/review.css"]}

    # --- who may do what: coins are created by uploads and imports, changed only through coin_correct() -------------

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_review_permission(self, request) -> bool:
        return can_review(request.user)

    # --- the queue ---------------------------------------------------------------------------------------------------

    def get_queryset(self, request):
        queryset = selectors.coin_review_list()
        return queryset.order_by(*self.get_ordering(request))

    def get_ordering(self, request):
        return QUEUE_ORDERS.get(request.GET.get(QueueOrderFilter.parameter_name, ""), QUEUE_ORDERS[DEFAULT_ORDER])

    def get_changelist(self, request, **kwargs):
        return QueueChangeList

    def get_search_results(self, request, queryset, search_term):
        """A number ("42" or "#42") is a coin id (or an all-digit username), not a part of every username with a 4."""
        term = search_term.strip().removeprefix("#")
        if term.isdigit() and len(term) < 19:  # beyond that it is no id (and overflows the integer column)
            return queryset.filter(Q(pk=int(term)) | Q(owner__username=term)), False
        return queryset.filter(owner__username__icontains=term) if term else queryset, False

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_review": can_review(request.user),
            "is_nav_sidebar_enabled": False,  # the queue needs the width for its photos and columns
        }
        if extra_context["can_review"]:
            extra_context.setdefault("title", "Review queue")
        return super().changelist_view(request, extra_context=extra_context)

    @admin.display(description="Coin", ordering="id")
    def coin_label(self, coin: Coin) -> str:
        return f"#{coin.pk}"

    @admin.display(description="Photos (front, back)")
    def thumbnails(self, coin: Coin) -> str:
        return format_html(
            '<span class="coin-thumbs"><img src="{}" alt="front of coin #{}" loading="lazy" width="64" height="64">'
            '<img src="{}" alt="back of coin #{}" loading="lazy" width="64" height="64"></span>',
            _image_url(coin, "front", thumb=True),
            coin.pk,
            _image_url(coin, "back", thumb=True),
            coin.pk,
        )

    @admin.display(description="Predicted", ordering="pred_year", empty_value="–")
    def predicted_year(self, coin: Coin) -> int | None:
        return coin.pred_year

    @admin.display(description="Interval", ordering="interval_width", empty_value="–")
    def interval(self, coin: Coin) -> str | None:
        if coin.pred_low is None:
            return None
        return format_html(
            '<span class="coin-interval">{}–{}<small>width {}</small></span>',
            coin.pred_low,
            coin.pred_high,
            coin.interval_width,
        )

    @admin.display(description="Model", ordering="pred_version", empty_value="–")
    def model_version(self, coin: Coin) -> str | None:
        return f"v{coin.pred_version}" if coin.pred_version is not None else None

    @admin.display(description="Age", ordering="created_at")
    def age(self, coin: Coin) -> str:
        return format_html(
            '<span title="{}">{}</span>', coin.created_at.isoformat(timespec="minutes"), _short_age(coin)
        )

    @admin.display(description="State")
    def state(self, coin: Coin) -> str:
        if coin.excluded_from_training:
            return "excluded"
        if coin.verified_year is not None:
            return f"verified {coin.verified_year}"
        return "queued" if coin.status == Coin.Status.PREDICTED else coin.get_status_display().lower()

    @admin.action(description="Confirm predicted year", permissions=["review"])
    def confirm_predicted_year(self, request, queryset):
        """Each selected coin through coin_correct() with its latest predicted year (verified coins are left alone)."""
        confirmed, skipped = services.coins_confirm_predicted(
            coins=queryset.prefetch_related("predictions"), curator=request.user
        )
        self.message_user(request, f"Confirmed the predicted year of {confirmed} coin(s); skipped {skipped}.")

    # --- the read-only coin page (non-curator staff); curators land on the review page instead ---------------------

    @admin.display(description="Photos")
    def photos(self, coin: Coin) -> str:
        return format_html(
            '<span class="coin-thumbs coin-thumbs--medium"><img src="{}" alt="front"><img src="{}" alt="back"></span>',
            _image_url(coin, "front", thumb=True),
            _image_url(coin, "back", thumb=True),
        )

    @admin.display(description="Latest prediction")
    def prediction_summary(self, coin: Coin) -> str:
        prediction = coin.latest_prediction
        if prediction is None:
            return "none yet"
        return (
            f"{prediction.year} (interval {prediction.interval_low}–{prediction.interval_high}), "
            f"{prediction.model_version}"
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "GET" and can_review(request.user) and object_id.isdigit():
            url = reverse("admin:predictions_coin_review", kwargs={"coin_id": int(object_id)})
            query = request.GET.urlencode()
            return HttpResponseRedirect(f"{url}?{query}" if query else url)
        return super().change_view(request, object_id, form_url, extra_context)

    # --- the review page ---------------------------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("review/", view(self.review_start_view), name="predictions_coin_review_start"),
            path("<int:coin_id>/review/", view(self.review_view), name="predictions_coin_review"),
            *super().get_urls(),
        ]

    def review_start_view(self, request: HttpRequest) -> HttpResponse:
        """Start reviewing: the first coin of the queue as the changelist shows it (same filters and order)."""
        if not can_review(request.user):
            raise PermissionDenied
        return self._redirect_to_coin(request, self._next_in_queue(self._queue(request), after_id=None))

    def review_view(self, request: HttpRequest, coin_id: int) -> HttpResponse:
        """Photos side by side, the prediction, earlier corrections, and one form; saving opens the next coin."""
        if not can_review(request.user):
            raise PermissionDenied
        coin = selectors.coin_get_for_review(coin_id=coin_id)
        status = 200
        if request.method == "POST":
            form = CoinReviewForm(request.POST, confirm_year=coin.display_year)
            if form.is_valid():
                next_id = self._next_in_queue(self._queue(request), after_id=coin.pk)
                old_year = coin.display_year
                try:
                    correction = services.coin_correct(
                        coin=coin,
                        curator=request.user,
                        year=form.cleaned_data["year"],
                        exclude=form.cleaned_data["exclude"],
                    )
                except ValidationError as error:
                    form.add_error(None, error)
                else:
                    self.message_user(request, _decision_message(coin, correction, old_year), messages.SUCCESS)
                    return self._redirect_to_coin(request, next_id)
            status = 400
        else:
            form = CoinReviewForm(confirm_year=coin.display_year)
        queue = self._queue(request)
        skip_to = self._next_in_queue(queue, after_id=coin.pk)
        predictions = sorted(coin.predictions.all(), key=lambda p: (p.created_at, p.pk), reverse=True)
        context = {
            **self.admin_site.each_context(request),
            "is_nav_sidebar_enabled": False,  # the photos need the width
            "title": f"Review coin #{coin.pk}",
            "opts": self.opts,
            "coin": coin,
            "prediction": predictions[0] if predictions else None,
            "earlier_predictions": predictions[1:],
            "corrections": list(coin.corrections.all()),
            "form": form,
            "confirm_year": coin.display_year,
            "front_url": _image_url(coin, "front"),
            "back_url": _image_url(coin, "back"),
            "queue_count": queue.result_count,
            "in_queue": queue.queryset.filter(pk=coin.pk).exists(),
            "skip_url": self._coin_url(request, skip_to) if skip_to else None,
            "changelist_url": self._changelist_url(request),
            "preserved_filters": self.get_preserved_filters(request),
        }
        return TemplateResponse(request, "admin/predictions/coin/review.html", context, status=status)

    def _queue(self, request: HttpRequest):
        """The changelist the curator came from: its filters, search and order travel in `_changelist_filters`."""
        queue_request = copy.copy(request)
        queue_request.GET = QueryDict(request.GET.get("_changelist_filters", ""))
        try:
            return self.get_changelist_instance(queue_request)
        except IncorrectLookupParameters:
            queue_request.GET = QueryDict("")
            return self.get_changelist_instance(queue_request)

    @staticmethod
    def _next_in_queue(changelist, *, after_id: int | None) -> int | None:
        """The coin after `after_id` in the queue's order; the first one if `after_id` is not (or no longer) in it."""
        first = None
        found = False
        for pk in changelist.queryset.values_list("pk", flat=True).iterator(chunk_size=500):
            if found:
                return pk
            if pk == after_id:
                found = True
            elif first is None:
                first = pk
        return None if found else first

    def _coin_url(self, request: HttpRequest, coin_id: int) -> str:
        url = reverse("admin:predictions_coin_review", kwargs={"coin_id": coin_id})
        preserved = self.get_preserved_filters(request)
        return f"{url}?{preserved}" if preserved else url

    def _changelist_url(self, request: HttpRequest) -> str:
        url = reverse("admin:predictions_coin_changelist")
        filters = request.GET.get("_changelist_filters", "")
        return f"{url}?{filters}" if filters else url

    def _redirect_to_coin(self, request: HttpRequest, coin_id: int | None) -> HttpResponseRedirect:
        if coin_id is None:
            self.message_user(request, "No more coins in this queue.", messages.INFO)
            return HttpResponseRedirect(self._changelist_url(request))
        return HttpResponseRedirect(self._coin_url(request, coin_id))


def _short_age(coin: Coin) -> str:
    """Age as "5 min", "3 h" or "12 d": the queue's columns are narrow and the exact time is in the cell's title."""
    minutes = int((timezone.now() - coin.created_at).total_seconds() // 60)
    if minutes < 60:
        return f"{max(minutes, 0)} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


def _decision_message(coin: Coin, correction: Correction, old_year: int | None) -> str:
    if correction.excluded:
        kept = f" (year {correction.new_year})" if correction.new_year is not None else ""
        return f"Coin #{coin.pk}: photos marked unusable, excluded from training{kept}."
    if correction.new_year == old_year:
        return f"Coin #{coin.pk}: confirmed {correction.new_year}."
    return f"Coin #{coin.pk}: corrected {old_year} → {correction.new_year}."


class _ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """A read-only ModelAdmin."""


@admin.register(Prediction)
class PredictionAdmin(_ReadOnlyAdmin):
    list_display = ("id", "coin", "year", "interval_low", "interval_high", "model_version", "latency_ms", "created_at")
    list_select_related = ("coin", "model_version")
    list_filter = ("model_version",)
    search_fields = ("coin__id__exact",)
    date_hierarchy = "created_at"


@admin.register(Correction)
class CorrectionAdmin(_ReadOnlyAdmin):
    """The audit trail of curators' decisions: who, when, old and new year, excluded."""

    list_display = ("created_at", "coin", "curator", "old_year", "new_year", "excluded")
    list_select_related = ("coin", "curator")
    list_filter = ("excluded", ("curator", admin.RelatedOnlyFieldListFilter))
    search_fields = ("coin__id__exact", "curator__username")
    date_hierarchy = "created_at"
