"""The coin list, which is the curators' review queue, and the read-only coin page for other staff.

Curators (permission predictions.review_coin) work the Coin changelist, whose default view is the queue of coins
awaiting review, most uncertain first, and the review desk (admin/desk.py) per coin. Every decision goes through
decisions.coin_decide() (services.coin_correct() for bulk confirm), the only way a year becomes a training label.
Rejected coins (not a coin, date unreadable) show their verdict, never the year the model only guessed, and come
after the coins it read (filters.QUEUE_ORDERS). Other staff with view permission may look at coins but never decide;
nobody edits the audit trail.
"""

from __future__ import annotations

import math

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from .. import selectors, services
from ..models import Coin
from ..roles import can_list_coins_in_admin, can_review
from .audit import CorrectionInline
from .base import image_url
from .desk import ReviewDeskMixin
from .filters import (
    DEFAULT_ORDER,
    QUEUE_ORDERS,
    DecadeFilter,
    QueueOrderFilter,
    ReviewStateFilter,
    VerdictFilter,
    is_whole_queue,
)

User = get_user_model()
# A username search matches at most this many collectors (a search for "a" would otherwise list every one).
SEARCH_MAX_OWNERS = 1000


class QueueChangeList(ChangeList):
    """Column headers mark the queue's actual order (Uncertainty ▼ by default), not the class default."""

    def get_ordering(self, request, queryset):
        self.queue_ordering = self.model_admin.get_ordering(request)
        return super().get_ordering(request, queryset)

    def _get_default_ordering(self):
        return getattr(self, "queue_ordering", None) or super()._get_default_ordering()

    def get_results(self, request):
        """The desk's claim needs the queue's queryset only (`request.queue_only`): no COUNT, no page read."""
        if getattr(request, "queue_only", False):
            self.result_count = self.full_result_count = 0
            self.result_list = self.queryset.none()
            self.can_show_all = self.multi_page = False
            self.paginator = self.model_admin.get_paginator(request, self.queryset.none(), self.list_per_page)
            return
        super().get_results(request)


class KnownCountPaginator(Paginator):
    """A paginator told its count when the caller has it already (the progress line's count of the queue), else
    counting up to selectors.QUEUE_COUNT_CAP: beyond that, the last pages are not offered (an exact count of the
    queue read every row, 1.6 s at 1M coins)."""

    def __init__(self, *args, count: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if count is not None:
            self.__dict__["count"] = count  # Paginator.count is a cached_property

    @cached_property
    def count(self) -> int:
        return selectors.count_capped(self.object_list)[0]


@admin.register(Coin)
class CoinAdmin(ReviewDeskMixin, admin.ModelAdmin):
    list_display = (
        "coin_label",
        "thumbnails",
        "predicted_year",
        "interval",
        "uncertainty",
        "model_version",
        "source",
        "age",
        "owner",
        "state",
    )
    list_display_links = ("coin_label", "thumbnails")
    list_filter = (ReviewStateFilter, QueueOrderFilter, VerdictFilter, "source", DecadeFilter)
    list_select_related = ("owner", "claimed_by", "last_prediction__model_version")
    search_fields = ("id", "owner__username")  # shows the search box; get_search_results() does the work
    search_help_text = "A coin id (42 or #42) or the owner's username."
    list_per_page = 50
    # Field names only (the system check cannot see annotations): get_ordering() applies the queue's real order, and
    # QueueChangeList marks it in the column headers.
    ordering = QUEUE_ORDERS["oldest"]
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
        "not_a_coin",
        "deleted_at",
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

    def has_view_permission(self, request, obj=None):
        return can_list_coins_in_admin(request.user) and super().has_view_permission(request, obj)

    # --- the queue ---------------------------------------------------------------------------------------------------

    def get_queryset(self, request):
        """The review list (selectors.coin_review_list): the coin's copy of its latest prediction's verdict,
        `pred_rejected` ("not_a_coin", "unreadable" or "") and `pred_no_year` (the queue's order puts those after the
        coins the model read, see filters.QUEUE_ORDERS)."""
        return selectors.coin_review_list().order_by(*self.get_ordering(request))

    def get_ordering(self, request):
        return QUEUE_ORDERS.get(request.GET.get(QueueOrderFilter.parameter_name, ""), QUEUE_ORDERS[DEFAULT_ORDER])

    def get_changelist(self, request, **kwargs):
        return QueueChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        """The unfiltered queue's size is the progress line's `left`, counted once (changelist_view)."""
        count = getattr(request, "queue_left", None) if is_whole_queue(request.GET) else None
        return KnownCountPaginator(queryset, per_page, orphans, allow_empty_first_page, count=count)

    def get_search_results(self, request, queryset, search_term):
        """A number ("42" or "#42") is a coin id (or an all-digit username), not a part of every username with a 4.

        The owners are looked up first (the users table, one small query) so the coin query is `id = n OR owner_id
        IN (...)`: two index scans; the OR across a join to the users table read every coin (45-52 s at 1M)."""
        term = search_term.strip().removeprefix("#")
        if term.isdigit() and len(term) < 19:  # beyond that it is no id (and overflows the integer column)
            owners = list(User.objects.filter(username=term).values_list("pk", flat=True))
            return queryset.filter(Q(pk=int(term)) | Q(owner_id__in=owners)), False
        if not term:
            return queryset, False
        owners = list(User.objects.filter(username__icontains=term).values_list("pk", flat=True)[:SEARCH_MAX_OWNERS])
        return queryset.filter(owner_id__in=owners), False

    def changelist_view(self, request, extra_context=None):
        reviewer = can_review(request.user)
        progress = selectors.review_progress(curator=request.user) if reviewer else None
        if progress is not None:
            request.queue_left = progress.left
        extra_context = {
            **(extra_context or {}),
            "can_review": reviewer,
            "progress": progress,
            "is_nav_sidebar_enabled": False,  # the queue needs the width for its photos and columns
        }
        if reviewer:
            extra_context.setdefault("title", "Review queue")
        return super().changelist_view(request, extra_context=extra_context)

    @admin.display(description="Coin", ordering="id")
    def coin_label(self, coin: Coin) -> str:
        return f"#{coin.pk}"

    @admin.display(description="Photos")  # front, back: their alt texts say which
    def thumbnails(self, coin: Coin) -> str:
        return format_html(
            '<span class="coin-thumbs"><img src="{}" alt="front of coin #{}" loading="lazy" width="56" height="56">'
            '<img src="{}" alt="back of coin #{}" loading="lazy" width="56" height="56"></span>',
            image_url(coin, "front", thumb=True),
            coin.pk,
            image_url(coin, "back", thumb=True),
            coin.pk,
        )

    @admin.display(description="Predicted", ordering="pred_year", empty_value="–")
    def predicted_year(self, coin: Coin) -> int | str | None:
        """The model's verdict as it is: its year, or why it gave none (never the year it only guessed)."""
        if coin.pred_no_year:
            text = "not a coin" if coin.pred_rejected == "not_a_coin" else "unreadable"
            return format_html('<span class="coin-rejected">{}</span>', text)
        return coin.pred_year

    @admin.display(description="Interval", ordering="interval_width", empty_value="–")
    def interval(self, coin: Coin) -> str | None:
        if coin.pred_low is None or coin.pred_no_year:
            return None
        return format_html(
            '<span class="coin-interval">{}–{}<small>width {}</small></span>',
            coin.pred_low,
            coin.pred_high,
            coin.interval_width,
        )

    @admin.display(description="Uncertainty", ordering="pred_uncertainty", empty_value="–")
    def uncertainty(self, coin: Coin) -> str | None:
        """exp(entropy): how many years the model hesitates between (1 = sure of one year); none without a year."""
        if coin.pred_uncertainty is None or coin.pred_no_year:
            return None
        return format_html(
            '<span class="coin-uncertainty" title="entropy {} nats: the model hesitates between about {} years">'
            "≈{} y</span>",
            f"{coin.pred_uncertainty:.2f}",
            f"{math.exp(coin.pred_uncertainty):.0f}",
            f"{math.exp(coin.pred_uncertainty):.0f}",
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
        if coin.not_a_coin:
            text = "not a coin"
        elif coin.excluded_from_training:
            text = "excluded"
        elif coin.verified_year is not None:
            text = f"verified {coin.verified_year}"
        else:
            text = "queued" if coin.status == Coin.Status.PREDICTED else coin.get_status_display().lower()
        if coin.deleted_at is not None:
            text += " · deleted by collector"
        if coin.claimed_by_id and coin.claimed_until and coin.claimed_until > timezone.now():
            text += f" · {coin.claimed_by} reviewing"
        return text

    @admin.action(description="Confirm predicted year (confident predictions only)", permissions=["review"])
    def confirm_predicted_year(self, request, queryset):
        """Each selected coin whose prediction is confident through coin_correct() with its latest predicted year;
        the message says how many were skipped and why."""
        result = services.coins_confirm_predicted(coins=queryset.prefetch_related("predictions"), curator=request.user)
        text = f"Confirmed the predicted year of {result.confirmed} coin(s); skipped {result.skipped}"
        if result.skipped:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(result.skipped_by_reason.items()))
            text += f" ({reasons})"
        self.message_user(request, text + ".", messages.WARNING if result.skipped else messages.SUCCESS)

    # --- the read-only coin page (non-curator staff); curators land on the review page instead ---------------------

    @admin.display(description="Photos")
    def photos(self, coin: Coin) -> str:
        return format_html(
            '<span class="coin-thumbs coin-thumbs--medium"><img src="{}" alt="front"><img src="{}" alt="back"></span>',
            image_url(coin, "front", thumb=True),
            image_url(coin, "back", thumb=True),
        )

    @admin.display(description="Latest prediction")
    def prediction_summary(self, coin: Coin) -> str:
        prediction = coin.latest_prediction
        if prediction is None:
            return "none yet"
        if prediction.rejected:
            return f"no year: {prediction.get_rejected_display()} ({prediction.rejection_message}), {prediction.model_version}"
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


def _short_age(coin: Coin) -> str:
    """Age as "5 min", "3 h" or "12 d": the queue's columns are narrow and the exact time is in the cell's title."""
    minutes = int((timezone.now() - coin.created_at).total_seconds() // 60)
    if minutes < 60:
        return f"{max(minutes, 0)} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"
