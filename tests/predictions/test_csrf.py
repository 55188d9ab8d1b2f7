"""Every page form is protected against cross-site requests: with CSRF checks on (Django's test Client turns them off
by default), a POST without the page's token is refused with 403 and writes nothing; the same POST with the token
that the form's page handed out goes through."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from predictions.models import Coin, Correction
from tests.factories import CoinFactory, ModelVersionFactory, PredictionFactory, UserFactory
from training.ml import synthetic
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory's
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def csrf_client() -> Client:
    """A client that checks CSRF as a real csrf_client request is checked."""
    return Client(enforce_csrf_checks=True)


def token_from(csrf_client: Client, url: str) -> str:
    """The token the page at `url` puts in its form (and its cookie)."""
    response = csrf_client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    match = TOKEN.search(response.content.decode())
    assert match, f"{url} renders no csrfmiddlewaretoken"
    return match.group(1)


def coin_photos() -> dict[str, SimpleUploadedFile]:
    front, back, _year = next(synthetic.iter_coins(1, seed=3, size=96))
    return {
        "front_image": SimpleUploadedFile("front.jpg", front, content_type="image/jpeg"),
        "back_image": SimpleUploadedFile("back.jpg", back, content_type="image/jpeg"),
    }


def test_login_form_refuses_a_post_without_the_token_and_accepts_it_with(csrf_client):
    # given a collector with a password
    UserFactory(username="alice")
    url = reverse("login")
    credentials = {"username": "alice", "password": PASSWORD}

    # when posting the login form without the token / then it is refused, and nobody is logged in
    assert csrf_client.post(url, credentials).status_code == 403
    assert "_auth_user_id" not in csrf_client.session

    # when posting it with the login page's token / then the collector is logged in
    response = csrf_client.post(url, {**credentials, "csrfmiddlewaretoken": token_from(csrf_client, url)})
    assert response.status_code == 302
    assert csrf_client.session["_auth_user_id"]


def test_signup_form_refuses_a_post_without_the_token_and_accepts_it_with(csrf_client):
    from django.contrib.auth import get_user_model

    url = reverse("signup")
    form = {"username": "newcomer", "password1": "a-long-coin-phrase-42", "password2": "a-long-coin-phrase-42"}

    assert csrf_client.post(url, form).status_code == 403
    assert not get_user_model().objects.filter(username="newcomer").exists()

    response = csrf_client.post(url, {**form, "csrfmiddlewaretoken": token_from(csrf_client, url)})
    assert response.status_code == 302
    assert get_user_model().objects.filter(username="newcomer").exists()


def test_upload_form_refuses_a_post_without_the_token_and_accepts_it_with(csrf_client, collector, no_model):
    # given a logged-in collector (no model yet: the coin waits for one)
    csrf_client.force_login(collector)
    url = reverse("coin-upload")

    # when uploading without the token / then it is refused and no coin is stored
    assert csrf_client.post(url, coin_photos()).status_code == 403
    assert not Coin.objects.exists()

    # when uploading with the upload page's token / then the coin is stored
    response = csrf_client.post(url, {**coin_photos(), "csrfmiddlewaretoken": token_from(csrf_client, url)})
    assert response.status_code == 302, response.content[:500]
    assert Coin.objects.filter(owner=collector).count() == 1


def test_coin_delete_form_refuses_a_post_without_the_token_and_accepts_it_with(csrf_client, collector):
    # given a collector's coin
    coin = CoinFactory(owner=collector)
    csrf_client.force_login(collector)
    url = reverse("coin-delete", kwargs={"coin_id": coin.pk})

    assert csrf_client.post(url).status_code == 403
    assert Coin.objects.filter(pk=coin.pk).exists()

    # the delete form is on the coin's page
    token = token_from(csrf_client, reverse("coin-detail", kwargs={"coin_id": coin.pk}))
    assert csrf_client.post(url, {"csrfmiddlewaretoken": token}).status_code == 302
    assert not Coin.objects.filter(pk=coin.pk).exists()


def test_logout_form_refuses_a_post_without_the_token_and_accepts_it_with(csrf_client, collector):
    csrf_client.force_login(collector)
    url = reverse("logout")

    assert csrf_client.post(url).status_code == 403
    assert "_auth_user_id" in csrf_client.session

    token = token_from(csrf_client, reverse("coin-list"))  # the logout form is in every page's navigation
    assert csrf_client.post(url, {"csrfmiddlewaretoken": token}).status_code in (200, 302)
    assert "_auth_user_id" not in csrf_client.session


def test_review_correction_form_refuses_a_post_without_the_token_and_accepts_it_with(csrf_client, curator):
    # given a coin awaiting review
    coin = CoinFactory(status=Coin.Status.PREDICTED)
    PredictionFactory(coin=coin, year=1874, model_version=ModelVersionFactory(version=3))
    csrf_client.force_login(curator)
    url = reverse("admin:predictions_coin_review", kwargs={"coin_id": coin.pk})

    # when correcting the year without the token / then it is refused and nothing is written
    assert csrf_client.post(url, {"year": "1880"}).status_code == 403
    assert not Correction.objects.exists()

    # when correcting it with the review page's token / then the correction is saved
    response = csrf_client.post(url, {"year": "1880", "csrfmiddlewaretoken": token_from(csrf_client, url)})
    assert response.status_code == 302
    assert Correction.objects.get(coin=coin).new_year == 1880


def test_admin_cancel_run_refuses_a_post_without_the_token_and_accepts_it_with(csrf_client, model_owner):
    # given a queued training run
    run = TrainingRun.objects.create(config={})
    csrf_client.force_login(model_owner)
    url = reverse("admin:training_trainingrun_cancel", kwargs={"pk": run.pk})

    assert csrf_client.post(url).status_code == 403
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.QUEUED

    # the cancel button's form is on the run's admin page
    token = token_from(csrf_client, reverse("admin:training_trainingrun_change", args=[run.pk]))
    assert csrf_client.post(url, {"csrfmiddlewaretoken": token}).status_code == 302
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELLED
