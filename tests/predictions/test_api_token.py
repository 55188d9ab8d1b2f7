"""POST /api/token issues a token for a username and password; DELETE /api/token revokes it; with
COINSITE_TOKEN_TTL_HOURS a token expires and POST /api/token replaces it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.signals import user_login_failed
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"  # UserFactory's
WRONG = {"error": "The username or password is wrong.", "field": None}
EXPIRED = {"error": "The token expired; get a new one at POST /api/token.", "field": None}


def with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.mark.parametrize("format", ["json", "multipart", "urlencoded"])
def test_token_is_issued_for_a_username_and_password(collector, format):
    # given a collector's credentials, as JSON or as a form
    credentials = {"username": collector.username, "password": PASSWORD}

    # when asking for a token
    if format == "urlencoded":
        response = APIClient().post(
            "/api/token",
            f"username={collector.username}&password={PASSWORD}",
            content_type="application/x-www-form-urlencoded",
        )
    else:
        response = APIClient().post("/api/token", credentials, format=format)

    # then their token, which authenticates API calls
    assert response.status_code == 200, response.json()
    key = response.json()["token"]
    assert response.json() == {"token": key} and Token.objects.get(key=key).user == collector
    assert with_token(key).get("/api/coins/").status_code == 200


def test_asking_again_gives_the_same_token(collector):
    credentials = {"username": collector.username, "password": PASSWORD}

    first = APIClient().post("/api/token", credentials, format="json").json()["token"]
    second = APIClient().post("/api/token", credentials, format="json").json()["token"]

    assert first == second and Token.objects.count() == 1


def test_wrong_password_and_unknown_user_get_the_same_400(collector):
    """No hint whether the user exists: the same status and message for both, and no token."""
    wrong_password = APIClient().post("/api/token", {"username": collector.username, "password": "nope"}, format="json")
    unknown_user = APIClient().post("/api/token", {"username": "nobody", "password": "nope"}, format="json")

    assert wrong_password.status_code == unknown_user.status_code == 400
    assert wrong_password.json() == unknown_user.json() == WRONG
    assert not Token.objects.exists()


def test_an_inactive_user_gets_no_token_and_no_hint(collector):
    collector.is_active = False
    collector.save()

    response = APIClient().post("/api/token", {"username": collector.username, "password": PASSWORD}, format="json")

    assert response.status_code == 400 and response.json() == WRONG


@pytest.mark.parametrize(
    ("body", "field", "error"),
    [
        ({"username": "collector1"}, "password", "password is missing: send your username and password."),
        ({"password": "x"}, "username", "username is missing: send your username and password."),
        ({"username": "", "password": "x"}, "username", "username is empty."),
    ],
)
def test_missing_credentials_are_named(body, field, error):
    response = APIClient().post("/api/token", body, format="json")

    assert response.status_code == 400
    assert response.json() == {"error": error, "field": field}


def test_a_failed_attempt_is_reported_with_its_request(collector):
    """authenticate() gets the request, so the login lockout (a user_login_failed receiver) sees every failure."""
    failures = []

    def record(sender, credentials, request=None, **kwargs):
        failures.append((credentials["username"], request))

    user_login_failed.connect(record)
    try:
        APIClient(REMOTE_ADDR="203.0.113.9").post(
            "/api/token", {"username": collector.username, "password": "nope"}, format="json"
        )
    finally:
        user_login_failed.disconnect(record)

    [(username, request)] = failures
    assert username == collector.username
    assert request is not None and request.META["REMOTE_ADDR"] == "203.0.113.9"


def test_a_locked_account_gets_no_token_even_with_the_right_password(collector, settings):
    """The sign-in lockout (coinsite.lockout) counts the endpoint's failures and refuses the account afterwards."""
    client = APIClient()
    for _ in range(settings.COINSITE_LOGIN_FAILURE_LIMIT):
        client.post("/api/token", {"username": collector.username, "password": "guess"}, format="json")

    response = client.post("/api/token", {"username": collector.username, "password": PASSWORD}, format="json")

    assert response.status_code == 429 and "sign-in is locked" in response.json()["error"]
    assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60  # the lockout's own time, not the throttle's
    assert not Token.objects.exists()


def test_a_stale_token_sent_along_does_not_stop_getting_a_new_one(collector):
    # given a client that still sends a revoked token
    client = with_token("0123456789abcdef0123456789abcdef01234567")

    # when it asks for a token with its credentials
    response = client.post("/api/token", {"username": collector.username, "password": PASSWORD}, format="json")

    # then it gets one: the credentials in the body are what counts
    assert response.status_code == 200


def test_revoking_the_token_makes_it_stop_working(collector):
    # given a collector's token
    key = Token.objects.create(user=collector).key
    client = with_token(key)

    # when revoking it
    response = client.delete("/api/token")

    # then it is gone: the next call is refused, and a new token can be asked for
    assert response.status_code == 204
    assert not Token.objects.filter(key=key).exists()
    assert client.get("/api/coins/").json() == {"error": "Invalid token.", "field": None}
    new = APIClient().post("/api/token", {"username": collector.username, "password": PASSWORD}, format="json")
    assert new.status_code == 200 and new.json()["token"] != key


def test_revoking_needs_credentials():
    response = APIClient().delete("/api/token")

    assert response.status_code == 401
    assert response.json() == {"error": "Authentication credentials were not provided.", "field": None}


def test_a_signed_in_session_can_revoke_its_users_token(client, collector):
    Token.objects.create(user=collector)
    client.force_login(collector)

    response = client.delete("/api/token")

    assert response.status_code == 204 and not Token.objects.exists()


# --- expiry ----------------------------------------------------------------------------------------------------------


def make_older(token: Token, hours: float) -> None:
    Token.objects.filter(pk=token.pk).update(created=timezone.now() - timedelta(hours=hours))


def test_tokens_never_expire_by_default(collector, settings):
    assert settings.COINSITE_TOKEN_TTL_HOURS == 0
    token = Token.objects.create(user=collector)
    make_older(token, 24 * 365 * 5)

    assert with_token(token.key).get("/api/coins/").status_code == 200


def test_a_token_older_than_the_lifetime_is_refused_with_401(collector, settings):
    # given tokens that live 12 hours, and one of 13 hours
    settings.COINSITE_TOKEN_TTL_HOURS = 12
    token = Token.objects.create(user=collector)
    make_older(token, 13)

    # when it is used
    response = with_token(token.key).get("/api/coins/")

    # then 401 saying where to get a new one
    assert response.status_code == 401
    assert response.json() == EXPIRED
    assert response["WWW-Authenticate"] == "Token"


def test_a_token_younger_than_the_lifetime_works(collector, settings):
    settings.COINSITE_TOKEN_TTL_HOURS = 12
    token = Token.objects.create(user=collector)
    make_older(token, 11)

    assert with_token(token.key).get("/api/coins/").status_code == 200


def test_asking_again_replaces_an_expired_token(collector, settings):
    # given an expired token
    settings.COINSITE_TOKEN_TTL_HOURS = 1
    old = Token.objects.create(user=collector)
    make_older(old, 2)

    # when asking for a token (sending the expired one along, as a client would)
    response = with_token(old.key).post(
        "/api/token", {"username": collector.username, "password": PASSWORD}, format="json"
    )

    # then a new one, which works, and the old one is gone
    assert response.status_code == 200
    new = response.json()["token"]
    assert new != old.key and not Token.objects.filter(key=old.key).exists()
    assert with_token(new).get("/api/coins/").status_code == 200


def test_another_users_credentials_give_their_own_token(collector):
    other = UserFactory(username="someone")
    mine = Token.objects.create(user=collector)

    response = with_token(mine.key).post("/api/token", {"username": "someone", "password": PASSWORD}, format="json")

    assert response.status_code == 200
    assert Token.objects.get(key=response.json()["token"]).user == other


def test_the_page_that_shows_a_new_token_is_never_stored_by_a_cache(client, collector):
    client.force_login(collector)

    response = client.post("/accounts/token/", {"action": "create"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    assert "no-store" in client.get("/accounts/token/")["Cache-Control"]
