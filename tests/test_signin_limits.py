"""Account limits: sign-in per address and per account, sign-up and password reset per address (and per mailbox),
each refused before a password is hashed or a mail sent; and the lockout's counter, which lets 40 concurrent wrong
guesses make at most 5 password checks."""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core import mail
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from coinsite import lockout
from tests.factories import UserFactory

PASSWORD = "correct-horse-battery"
CHECKS: list[float] = []  # one entry per password the counting hasher verified


class CountingHasher(MD5PasswordHasher):
    """The tests' MD5 hasher, counting each password it verifies and taking 50 ms to do it (as a slow PBKDF2 check
    would), so concurrent guesses overlap for real."""

    def verify(self, password: str, encoded: str) -> bool:
        CHECKS.append(time.monotonic())
        time.sleep(0.05)
        return super().verify(password, encoded)


@pytest.fixture
def counted_checks(settings):
    settings.PASSWORD_HASHERS = ["tests.test_signin_limits.CountingHasher"]
    CHECKS.clear()
    yield CHECKS
    CHECKS.clear()


def sign_in(client, username: str, password: str, *, address: str = "127.0.0.1", admin: bool = False):
    url = reverse("admin:login") if admin else reverse("login")
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.django_db(transaction=True)
def test_forty_concurrent_wrong_guesses_make_at_most_five_password_checks(counted_checks, rates):
    # given an account, and no per-account rate in the way (the lockout is what is tested)
    rates(signin_account="1000/min")
    UserFactory(username="target", roles=["collector"])
    barrier = threading.Barrier(40)
    outcomes: list[object] = []

    def guess(n: int) -> None:
        request = RequestFactory().post("/accounts/login/")
        barrier.wait(timeout=30)
        outcomes.append(authenticate(request=request, username="target", password=f"wrong-{n}"))

    # when 40 wrong guesses arrive at once
    threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then at most 5 passwords were checked, the account is locked, and the right password is refused too
    assert len(outcomes) == 40 and not any(outcomes)
    assert len(counted_checks) <= 5
    assert lockout.seconds_locked("target") > 14 * 60
    assert authenticate(request=RequestFactory().post("/"), username="target", password=PASSWORD) is None
    assert len(counted_checks) <= 5
    print(f"password checks under 40 concurrent wrong guesses: {len(counted_checks)}")


@pytest.mark.django_db
def test_sign_in_is_limited_per_address_before_any_password_is_checked(client, counted_checks, rates):
    # given 3 sign-ins a minute per address
    rates(signin="3/min")
    UserFactory(username="known", roles=["collector"])

    # when one address tries four unknown names, then the right password of a known one
    first = [sign_in(client, f"nobody-{n}", "guess").status_code for n in range(3)]
    checks_before = len(counted_checks)
    fourth = sign_in(client, "known", PASSWORD)

    # then the fourth is refused with 429 and no password checked; another address is still served
    assert first == [200, 200, 200]
    assert fourth.status_code == 429
    assert int(fourth["Retry-After"]) >= 1
    assert "at most 3 per minute to POST /accounts/login/" in fourth.content.decode()
    assert len(counted_checks) == checks_before
    assert "_auth_user_id" not in client.session
    assert sign_in(client, "known", PASSWORD, address="10.0.0.2").status_code == 302


@pytest.mark.django_db
def test_sign_in_is_limited_per_account_from_any_address(client, counted_checks, rates):
    # given 3 attempts a minute per account
    rates(signin_account="3/min")
    UserFactory(username="victim", roles=["collector"])

    # when three addresses each try the account once with a wrong password, and a fourth with the right one
    for n in range(3):
        assert sign_in(client, "victim", f"guess-{n}", address=f"10.0.1.{n}").status_code == 200
    checks_before = len(counted_checks)
    response = sign_in(client, " VICTIM", PASSWORD, address="10.0.1.9")

    # then the fourth is refused before its password is checked
    assert response.status_code == 429
    assert len(counted_checks) == checks_before
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_admin_sign_in_is_limited_per_address(client, rates):
    rates(signin="2/min")
    UserFactory(username="root", is_staff=True, is_superuser=True)
    for n in range(2):
        sign_in(client, f"x{n}", "guess", admin=True)

    response = sign_in(client, "root", PASSWORD, admin=True)

    assert "at most 2 per minute" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_api_token_is_limited_per_account_and_refused_before_the_check(counted_checks, rates):
    # given the API's own address limit raised, and 2 attempts a minute per account
    rates(token="1000/min", signin_account="2/min")
    UserFactory(username="apiuser", roles=["collector"])
    api = APIClient()
    for n in range(2):
        assert api.post("/api/token", {"username": "apiuser", "password": f"g{n}"}).status_code == 400
    checks_before = len(counted_checks)

    response = api.post("/api/token", {"username": "apiuser", "password": PASSWORD}, REMOTE_ADDR="10.9.9.9")

    assert response.status_code == 429
    assert "Retry-After" in response
    assert len(counted_checks) == checks_before


@pytest.mark.django_db
def test_the_api_token_tells_a_locked_account_so(counted_checks, rates):
    rates(token="1000/min", signin_account="1000/min")
    UserFactory(username="locked", roles=["collector"])
    api = APIClient()
    for n in range(5):
        api.post("/api/token", {"username": "locked", "password": f"g{n}"})

    response = api.post("/api/token", {"username": "locked", "password": PASSWORD})

    assert response.status_code == 429
    assert "sign-in is locked" in response.json()["error"]
    assert len(counted_checks) == 5


@pytest.mark.django_db
def test_sign_up_is_limited_per_address_before_the_password_is_hashed(client, rates):
    rates(signup="2/hour")
    form = {"username": "", "password1": "a-long-Passw0rd!", "password2": "a-long-Passw0rd!"}
    for n in range(2):
        assert client.post(reverse("signup"), {**form, "username": f"new{n}"}).status_code == 302
        client.logout()

    response = client.post(reverse("signup"), {**form, "username": "new2"})

    assert response.status_code == 429
    assert "at most 2 per hour to POST /accounts/signup/" in response.content.decode()
    assert not get_user_model().objects.filter(username="new2").exists()
    assert client.post(reverse("signup"), {**form, "username": "new3"}, REMOTE_ADDR="10.0.0.7").status_code == 302


@pytest.mark.django_db
def test_password_reset_is_limited_per_address(client, rates):
    rates(password_reset="2/hour", password_reset_email="1000/hour")
    UserFactory(username="forgetful", email="forgetful@example.org")
    for _ in range(2):
        assert client.post(reverse("password_reset"), {"email": "forgetful@example.org"}).status_code == 302

    response = client.post(reverse("password_reset"), {"email": "forgetful@example.org"})

    assert response.status_code == 429
    assert "at most 2 per hour to POST /accounts/password_reset/" in response.content.decode()
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_password_reset_mail_to_one_mailbox_is_limited_from_any_address(client, rates):
    # given 3 mails an hour per mailbox
    rates(password_reset="1000/hour", password_reset_email="3/hour")
    UserFactory(username="target", email="target@example.org")

    # when 30 addresses ask for a reset of the same mailbox
    answers = [
        client.post(reverse("password_reset"), {"email": " Target@example.org"}, REMOTE_ADDR=f"10.2.0.{n}").status_code
        for n in range(30)
    ]

    # then every answer looks the same (nothing said about the mailbox), and 3 mails were sent
    assert answers == [302] * 30
    assert len(mail.outbox) == 3
