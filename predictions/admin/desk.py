"""The review desk: one coin at a time, photos side by side, one form, keyboard first (static/admin-review/review.js).

Thin views over predictions.review (claims, decisions, undo) and the selectors: a curator reaches a coin from the
queue only by claiming it, so two curators working the queue at once never get the same coin; "next" and "skip"
claim the next coin nobody else holds, in the queue's own order and filters (carried in `_changelist_filters`).
"""

from __future__ import annotations

import copy

from django.contrib import messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from .. import decisions, review, selectors
from ..models import Coin, Correction
from ..roles import can_review
from . import desk_presenters as present
from .base import image_url
from .desk_presenters import decision_message
from .filters import is_whole_queue
from .forms import CoinReviewForm


class ReviewDeskMixin:
    """The review desk's URLs and views, mixed into CoinAdmin (it uses the admin's changelist as the queue)."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("review/", view(self.review_start_view), name="predictions_coin_review_start"),
            path("<int:coin_id>/review/", view(self.review_view), name="predictions_coin_review"),
            path("review/undo/<int:correction_id>/", view(self.review_undo_view), name="predictions_coin_review_undo"),
            *super().get_urls(),
        ]

    def review_start_view(self, request: HttpRequest) -> HttpResponse:
        """Start reviewing, or skip (`?after=<coin id>`): claim the next coin of the queue as the changelist shows it
        (same filters and order) that no other curator holds, and open it."""
        if not can_review(request.user):
            raise PermissionDenied
        after = request.GET.get("after", "")
        queue = self._queue_candidates(request, after_id=int(after) if after.isdigit() and len(after) < 19 else None)
        return self._redirect_to_coin(request, review.coin_claim_first(queue=queue, curator=request.user))

    def review_view(self, request: HttpRequest, coin_id: int) -> HttpResponse:
        """Photos side by side, the prediction, earlier decisions, one form; opening it claims the coin, saving opens
        the next unclaimed coin of the queue."""
        if not can_review(request.user):
            raise PermissionDenied
        coin = selectors.coin_get_for_review(coin_id=coin_id)
        rejected = decisions.model_rejection(coin)
        status = 200
        if request.method == "POST":
            form = CoinReviewForm(request.POST, confirm_year=coin.display_year, rejected=rejected)
            if form.is_valid():
                candidates = self._queue_candidates(request, after_id=coin.pk)  # the queue after this coin, as it was
                data = form.cleaned_data
                try:
                    result = review.coin_review_decide(
                        coin=coin,
                        curator=request.user,
                        decision=data["decision"],
                        year=data["year"],
                        override=data["override"],
                        same_photos=data["same_photos"],
                    )
                except ValidationError as error:
                    form.add_error(None, _for_form(error, form))
                else:
                    level = messages.WARNING if result.skipped else messages.SUCCESS
                    self.message_user(request, decision_message(result), level)
                    next_id = review.coin_claim_first(queue=candidates, curator=request.user)
                    return self._redirect_to_coin(request, next_id)
            status = 400
        else:
            form = CoinReviewForm(confirm_year=coin.display_year, rejected=rejected)
        held = review.coin_claim(coin_id=coin.pk, curator=request.user)
        if not held:
            coin.refresh_from_db(fields=["claimed_by", "claimed_until"])
        queue = self._queue_queryset(request)
        progress = selectors.review_progress(curator=request.user)
        queue_count, queue_more = self._queue_count(request, queue, progress)
        same_photos = present.same_photos(coin, url=lambda other: self._coin_url(request, other.pk))
        predictions = sorted(coin.predictions.all(), key=lambda p: (p.created_at, p.pk), reverse=True)
        context = {
            **self.admin_site.each_context(request),
            "is_nav_sidebar_enabled": False,  # the photos need the width
            "title": f"Review coin #{coin.pk}",
            "opts": self.opts,
            "coin": coin,
            "held": held,
            "claim_minutes": review.claim_seconds() // 60,
            "prediction": predictions[0] if predictions else None,
            "earlier_predictions": predictions[1:],
            "rejected": rejected,
            "same_photos": same_photos,
            "same_photos_open": [entry for entry in same_photos if entry.awaiting],
            "corrections": sorted(coin.corrections.all(), key=lambda c: c.pk, reverse=True),
            "form": form,
            "confirm_year": coin.display_year,
            "front_url": image_url(coin, "front"),
            "back_url": image_url(coin, "back"),
            "queue_count": queue_count,
            "queue_more": queue_more,
            "in_queue": queue.filter(pk=coin.pk).exists(),
            "skip_url": self._skip_url(request, coin.pk),
            "changelist_url": self._changelist_url(request),
            "preserved_filters": self.get_preserved_filters(request),
            "progress": progress,
            "undoable": [
                (correction, self._undo_url(request, correction))
                for correction in selectors.corrections_undoable(
                    curator=request.user, within_seconds=review.undo_seconds()
                )
            ],
            "undo_minutes": review.undo_seconds() // 60,
        }
        return TemplateResponse(request, "admin/predictions/coin/review.html", context, status=status)

    def review_undo_view(self, request: HttpRequest, correction_id: int) -> HttpResponse:
        """Undo one of the curator's own last decisions (POST), then open that coin again (claimed for them)."""
        if not can_review(request.user):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        try:
            undo = review.correction_undo(correction_id=correction_id, curator=request.user)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            back = request.POST.get("next_coin", "")
            if back.isdigit():
                return HttpResponseRedirect(self._coin_url(request, int(back)))
            return HttpResponseRedirect(self._changelist_url(request))
        restored = (
            "marked not a coin"
            if undo.not_a_coin
            else "excluded from training"
            if undo.excluded
            else (f"verified {undo.new_year}" if undo.new_year is not None else "back in the queue")
        )
        self.message_user(request, f"Undone: coin #{undo.coin_id} is {restored} again.", messages.SUCCESS)
        return HttpResponseRedirect(self._coin_url(request, undo.coin_id))

    # --- the queue the curator works -------------------------------------------------------------------------------

    def _queue_candidates(self, request: HttpRequest, *, after_id: int | None) -> QuerySet[Coin]:
        """The queue (its filters and order) from the coin after `after_id` on, or all of it when `after_id` is None
        or not in it: a queryset, evaluated only by the claim (one row, FOR UPDATE SKIP LOCKED). The position is a
        keyset condition on the order's values, read now, so a decision taken meanwhile does not move it."""
        queryset = self._queue_queryset(request)
        after = review.queue_after(queue=queryset, coin_id=after_id) if after_id is not None else None
        return queryset.filter(after) if after is not None else queryset

    def _queue_queryset(self, request: HttpRequest) -> QuerySet[Coin]:
        """The changelist's queryset (filters, search, order) without building the changelist: no COUNT, no page."""
        queue_request = copy.copy(request)
        queue_request.GET = QueryDict(request.GET.get("_changelist_filters", ""))
        queue_request.queue_only = True  # QueueChangeList.get_results: no COUNT, no page
        try:
            return self.get_changelist_instance(queue_request).queryset
        except IncorrectLookupParameters:
            queue_request.GET = QueryDict("")
            return self.get_changelist_instance(queue_request).queryset

    def _queue_count(
        self, request: HttpRequest, queryset: QuerySet[Coin], progress: selectors.ReviewProgress
    ) -> tuple[int, bool]:
        """How many coins the curator's queue holds: the progress line's count of the whole queue when the curator
        works it unfiltered (the same COUNT twice cost 2 x 3 s at 1M before the indexes), else its own count."""
        if is_whole_queue(QueryDict(request.GET.get("_changelist_filters", ""))):
            return progress.left, progress.left_more
        return selectors.count_capped(queryset)

    # --- URLs ----------------------------------------------------------------------------------------------------------

    def _coin_url(self, request: HttpRequest, coin_id: int) -> str:
        url = reverse("admin:predictions_coin_review", kwargs={"coin_id": coin_id})
        preserved = self.get_preserved_filters(request)
        return f"{url}?{preserved}" if preserved else url

    def _skip_url(self, request: HttpRequest, coin_id: int) -> str:
        """Skip: claim the next free coin after this one (the claim on this one is released by taking the next)."""
        query = {"after": coin_id}
        filters = request.GET.get("_changelist_filters", "")
        if filters:
            query["_changelist_filters"] = filters
        return f"{reverse('admin:predictions_coin_review_start')}?{urlencode(query)}"

    def _undo_url(self, request: HttpRequest, correction: Correction) -> str:
        url = reverse("admin:predictions_coin_review_undo", kwargs={"correction_id": correction.pk})
        preserved = self.get_preserved_filters(request)
        return f"{url}?{preserved}" if preserved else url

    def _changelist_url(self, request: HttpRequest) -> str:
        url = reverse("admin:predictions_coin_changelist")
        filters = request.GET.get("_changelist_filters", "")
        return f"{url}?{filters}" if filters else url

    def _redirect_to_coin(self, request: HttpRequest, coin_id: int | None) -> HttpResponseRedirect:
        if coin_id is None:
            self.message_user(request, "No more coins in this queue that nobody else is reviewing.", messages.INFO)
            return HttpResponseRedirect(self._changelist_url(request))
        return HttpResponseRedirect(self._coin_url(request, coin_id))


def _for_form(error: ValidationError, form: CoinReviewForm) -> ValidationError:
    """A service's error keyed by a field the form has lands on that field; any other key on the whole form."""
    if not hasattr(error, "error_dict"):
        return error
    return ValidationError(
        {key: value for key, value in error.error_dict.items() if key in form.fields}
        or [message for messages_ in error.error_dict.values() for message in messages_]
    )
