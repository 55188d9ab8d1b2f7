"""The collector pages: thin views over the same services and selectors the API and the admin use."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import PasswordResetView
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from rest_framework.authtoken.models import Token

from registry.roles import can_promote
from training.ml import photo_errors

from . import quota, selectors, services, verdicts
from .authentication import token_expired, token_issue, token_lifetime, token_revoke
from .forms import SIDE_LABELS, CoinFilterForm, CoinUploadForm, SignUpForm
from .models import Coin
from .roles import can_review
from .throttles import address_ident, page_refusal

COINS_PER_PAGE = 12
# Photos never change under their (random) name, but who may see them can: cache privately, revalidate daily.
IMAGE_CACHE_CONTROL = "private, max-age=86400"


def signup(request: HttpRequest) -> HttpResponse:
    """Create an account (it joins the collectors through the post_save signal) and sign it in. Counted per address
    before the form is read: each sign-up hashes a password (~0.5 s of CPU) and adds a row."""
    if request.user.is_authenticated:
        return redirect("coin-list")
    if request.method == "POST":
        refused = page_refusal(request, "signup", ident=address_ident(request))
        if refused is not None:
            context = {"form": SignUpForm(), "refused": refused[0]}
            return _too_many(render(request, "registration/signup.html", context), refused[1])
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)  # the one backend (coinsite.lockout.LockoutModelBackend)
        messages.success(request, f"Welcome, {user.username}. Upload a front and a back photo to date your first coin.")
        return redirect("coin-upload")
    return render(request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200)


class ThrottledPasswordResetView(PasswordResetView):
    """Django's password reset, counted per address (429) and per mailbox before any mail is sent. A mailbox over
    its limit is answered like any other (the "sent" page), so the page still says nothing about which addresses have
    accounts; it just gets no more mail for a while."""

    def post(self, request, *args, **kwargs) -> HttpResponse:
        refused = page_refusal(request, "password_reset", ident=address_ident(request))
        if refused is not None:
            context = self.get_context_data(form=self.form_class(), refused=refused[0])
            return _too_many(self.render_to_response(context), refused[1])
        return super().post(request, *args, **kwargs)

    def form_valid(self, form) -> HttpResponse:
        mailbox = form.cleaned_data["email"].strip().lower()
        ident = "mail" + hashlib.sha256(mailbox.encode()).hexdigest()
        if page_refusal(self.request, "password_reset_email", ident=ident) is not None:
            return redirect(self.get_success_url())
        return super().form_valid(form)


def _too_many(response: HttpResponse, seconds: int) -> HttpResponse:
    response.status_code = 429
    response["Retry-After"] = str(seconds)
    return response


@require_safe
def coin_list(request: HttpRequest) -> HttpResponse:
    """Home page: the collector's coins (filtered, paginated), or a short landing page for visitors."""
    if not request.user.is_authenticated:
        return render(request, "predictions/landing.html")
    form = CoinFilterForm(request.GET or None)
    filters = form.selector_kwargs() if form.is_bound else {}
    status = 200
    if form.is_bound and not form.is_valid():
        status = 400
        for problem in form.error_messages_flat():
            messages.error(request, f"{problem} The filter was not applied.")
    coins = selectors.coin_list_for_user(user=request.user, **filters)
    page = Paginator(coins, COINS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    counts = verdicts.verdict_counts(selectors.coins_of(request.user))
    context = {
        "form": form,
        "page": page,
        "cards": [(coin, verdicts.coin_verdict(coin)) for coin in page.object_list],
        "counts": counts,
        # a link per verdict that has coins, with their number (the selected one marked)
        "tabs": [(key, label, counts[key]) for key, label in verdicts.FILTER_CHOICES if counts[key]],
        "shown": filters.get("verdict") or "",
        "filtered": any(value not in (None, "") for value in filters.values()),
        "querystring": query.urlencode(),
    }
    return render(request, "predictions/coin_list.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def coin_upload(request: HttpRequest) -> HttpResponse:
    """Two photos in, one coin out (redirect to its page); the prediction follows from a Celery task.

    The page's script sends the form itself (with a progress bar) and asks for JSON, so an error keeps both chosen
    files in the browser and names the photo to replace; without the script the form posts and renders as usual.
    """
    context = {
        "max_upload_bytes": settings.COINSITE_MAX_UPLOAD_BYTES,
        "max_upload_mb": settings.COINSITE_MAX_UPLOAD_BYTES / (1024 * 1024),
        "max_pixels": settings.COINSITE_MAX_IMAGE_PIXELS,
        "max_megapixels": settings.COINSITE_MAX_IMAGE_PIXELS / 1e6,
    }
    if request.method == "GET":
        return render(request, "predictions/coin_upload.html", {**context, "form": CoinUploadForm()})
    wants_json = "application/json" in request.headers.get("Accept", "")
    refused = page_refusal(request, "upload")  # before the body is read: a throttled upload costs nothing
    if refused is None:
        refused = _quota_refusal(request)
    if refused is not None:
        return _upload_refused(request, context, wants_json, *refused)
    form = CoinUploadForm(request.POST, request.FILES)
    status = 400
    if form.is_valid():
        photos = {field: form.photo_bytes(field) for field in SIDE_LABELS}
        try:
            quota.storage_quota_check(owner=request.user, incoming=sum(len(data) for data in photos.values()))
        except quota.StorageQuotaError as error:
            return _upload_refused(request, context, wants_json, str(error), None, status=error.http_status)
        existing = services.coin_same_pair(owner=request.user, front=photos["front_image"], back=photos["back_image"])
        if existing is not None:
            messages.info(request, f"You uploaded these two photos before: this is {existing}.")
            return _upload_done(existing, wants_json)
        checked, errors = services.photos_check(photos)
        for field, error in errors.items():
            form.add_error(field, f"{SIDE_LABELS[field]}: {error}")
        if errors:
            status = max(error.http_status for error in errors.values())
        else:
            coin = services.coin_create_checked(
                owner=request.user,
                front=checked["front_image"],
                back=checked["back_image"],
                source=Coin.Source.UPLOAD,
                notes=form.cleaned_data["notes"],
            )
            coin.refresh_from_db(fields=["status"])  # in-process (eager) Celery may have predicted it already
            _upload_message(request, verdicts.coin_verdict(coin))
            return _upload_done(coin, wants_json)
    if wants_json:
        return JsonResponse({"errors": {field: list(errors) for field, errors in form.errors.items()}}, status=status)
    return render(request, "predictions/coin_upload.html", {**context, "form": form}, status=status)


def _quota_refusal(request: HttpRequest) -> tuple[str, None] | None:
    """A collector already at the quota is refused before the photos are read (the exact check follows them)."""
    try:
        quota.storage_quota_check(owner=request.user, incoming=1)
    except quota.StorageQuotaError as error:
        return str(error), None
    return None


def _upload_refused(
    request: HttpRequest, context: dict, wants_json: bool, message: str, retry: int | None, *, status: int = 0
) -> HttpResponse:
    """429 (throttled, with Retry-After) or 413 (over the storage quota), as JSON or as the page with the message."""
    status = status or (429 if retry is not None else quota.StorageQuotaError.http_status)
    if wants_json:
        response = JsonResponse({"errors": {"__all__": [message]}}, status=status)
    else:
        messages.error(request, message)
        response = render(request, "predictions/coin_upload.html", {**context, "form": CoinUploadForm()}, status=status)
    if retry is not None:
        response["Retry-After"] = str(retry)
    return response


def _upload_message(request: HttpRequest, verdict: verdicts.Verdict) -> None:
    """The banner after an upload says what the model found: a year, no coin, no readable date, or not yet."""
    if verdict == verdicts.DATED:
        messages.success(request, "Photos received and dated.")
    elif verdict == verdicts.NOT_A_COIN:
        messages.warning(
            request,
            "Photos received, but the model found no coin in them, so there is no year. How to retake them is below.",
        )
    elif verdict == verdicts.UNREADABLE:
        messages.warning(
            request,
            "Photos received, but the model could not read the date, so there is no year. How to retake them is below.",
        )
    elif verdict == verdicts.FAILED:
        messages.error(request, "Photos received, but the model could not read them.")
    else:
        messages.success(request, "Photos received. The year appears here as soon as the model has looked.")


def _upload_done(coin: Coin, wants_json: bool) -> HttpResponse:
    url = reverse("coin-detail", kwargs={"coin_id": coin.id})
    return JsonResponse({"redirect": url, "coin": coin.id}) if wants_json else redirect(url)


@login_required
@require_safe
def coin_detail(request: HttpRequest, coin_id: int) -> HttpResponse:
    coin = selectors.coin_get_for_user(user=request.user, coin_id=coin_id)
    predictions = sorted(coin.predictions.all(), key=lambda p: (p.created_at, p.pk), reverse=True)
    return render(
        request,
        "predictions/coin_detail.html",
        {
            "coin": coin,
            "verdict": verdicts.coin_verdict(coin),
            "prediction": predictions[0] if predictions else None,
            "earlier_predictions": predictions[1:],
            "status_url": reverse("coin-status", kwargs={"coin_id": coin.id}),
        },
    )


@login_required
@require_safe
def coin_status(request: HttpRequest, coin_id: int) -> JsonResponse:
    """What the coin page polls while the prediction is pending."""
    coin = selectors.coin_get_for_user(user=request.user, coin_id=coin_id)
    prediction = coin.latest_prediction
    answered = prediction is not None and not prediction.rejected  # a rejected prediction's best guess is no year
    verdict = verdicts.coin_verdict(coin)
    response = JsonResponse(
        {
            "status": coin.status,
            "status_detail": coin.status_detail,
            "verdict": verdict.key,
            "verdict_label": verdict.label,
            "heading": verdict.heading,
            "year": prediction.year if answered else None,
            "low": prediction.interval_low if answered else None,
            "high": prediction.interval_high if answered else None,
            "version": prediction.model_version.version if prediction else None,
            "model": str(prediction.model_version) if prediction else None,
            "verified_year": coin.verified_year,
            "rejected": prediction.rejected if prediction else "",
            "year_html": render_to_string("predictions/_year.html", {"prediction": prediction}) if prediction else "",
            "notes_html": render_to_string("predictions/_year_notes.html", {"prediction": prediction})
            if prediction
            else "",
        }
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def coin_delete(request: HttpRequest, coin_id: int) -> HttpResponse:
    coin = selectors.coin_get_for_user(user=request.user, coin_id=coin_id)
    label = str(coin)
    if services.coin_delete(coin=coin):
        messages.success(request, f"{label} was removed from your coins (curators keep its year as a training label).")
    else:
        messages.success(request, f"{label} and its photos were deleted.")
    return redirect("coin-list")


@login_required
@require_http_methods(["GET", "POST"])
@never_cache
def api_token(request: HttpRequest) -> HttpResponse:
    """The collector's API token: create it, see when it was made, rotate it (the old key stops working at once) or
    revoke it. The key is shown in full only on the page that made it, which no cache may keep (never_cache sends
    Cache-Control: no-store): a shared or back-button cache would show the key again."""
    new_key = None
    if request.method == "POST":
        action = request.POST.get("action")
        if action in ("create", "rotate"):
            if action == "rotate":
                token_revoke(user=request.user)
            new_key = token_issue(user=request.user).key
            messages.success(request, "Your new API token is below. Copy it now: it is shown in full only once.")
        elif action == "revoke":
            token_revoke(user=request.user)
            messages.success(request, "Your API token was revoked: clients using it are signed out.")
            return redirect("api-token")
        else:
            return HttpResponse("Unknown action: use create, rotate or revoke.", status=400)
    token = Token.objects.filter(user=request.user).first()
    context = {
        "token": token,
        "new_key": new_key,
        "expired": token is not None and token_expired(token),
        "lifetime": token_lifetime(),
    }
    return render(request, "registration/api_token.html", context)


def _may_see_photos(user, coin: Coin) -> bool:
    """The owner, curators (review desk) and model owners see a coin's photos; staff status alone is not enough, and
    nobody else learns the coin exists."""
    if can_review(user) or can_promote(user):
        return True
    return coin.owner_id == user.pk and coin.deleted_at is None  # a coin its owner deleted is gone for them


@login_required
@require_safe
def coin_image(request: HttpRequest, coin_id: int, side: str) -> HttpResponse:
    """One side's photo, through the permission check (media is never public). `?size=thumb` gives the stored
    thumbnail for lists; formats browsers cannot show (HEIC, TIFF, BMP) are sent as a JPEG rendition, named .jpg."""
    coin = get_object_or_404(Coin, pk=coin_id)
    if not _may_see_photos(request.user, coin):
        raise Http404("No coin matches the given query.")
    digest = coin.front_sha256 if side == "front" else coin.back_sha256
    thumb = request.GET.get("size") == "thumb"
    etag = f'"{digest}-{"thumb" if thumb else "full"}"'
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponseNotModified()
    else:
        try:
            rendition = services.coin_photo_rendition(coin=coin, side=side, thumbnail=thumb)
        except (FileNotFoundError, OSError) as error:
            raise Http404("The photo file is missing.") from error
        except photo_errors.ImageError as error:
            raise Http404("The photo cannot be shown.") from error
        if isinstance(rendition.content, bytes):
            response = HttpResponse(rendition.content, rendition.content_type)
        else:
            response = FileResponse(rendition.content, content_type=rendition.content_type)
        filename = f"coin-{coin.id}-{side}{'-thumb' if thumb else ''}.{rendition.extension}"
        response["Content-Disposition"] = f'inline; filename="{filename}"'
        response["X-Content-Type-Options"] = "nosniff"
    response["ETag"] = etag
    response["Cache-Control"] = IMAGE_CACHE_CONTROL
    patch_vary_headers(response, ["Cookie"])
    return response
