"""Sign-in lockout: five wrong passwords for an account, and the sixth try is refused, even with the right password,
on the site (429) and in the admin; the lock expires, and a success clears the count."""

from __future__ import annotations

import pytest
from django.urls import reverse

from coinsite import lockout
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


def sign_in(client, username: str, password: str, *, admin: bool = False):
    url = reverse("admin:login") if admin else reverse("login")
    return client.post(url, {"username": username, "password": password})


def test_the_sixth_try_after_five_wrong_passwords_is_refused_even_with_the_right_one(client):
    user = UserFactory(username="alice", roles=["collector"])

    wrong = [sign_in(client, "alice", f"guess-{n}").status_code for n in range(5)]
    sixth = sign_in(client, "alice", PASSWORD)

    assert wrong == [200] * 5  # the form again, "enter a correct username and password"
    assert sixth.status_code == 429
    assert "sign-in is locked for 15 more minutes" in sixth.content.decode()
    assert "_auth_user_id" not in client.session
    assert lockout.seconds_locked("ALICE ") > 14 * 60  # the same account however the name is typed
    assert user.username == "alice"


def test_the_admin_sign_in_is_locked_too(client):
    UserFactory(username="root", is_staff=True, is_superuser=True)

    for n in range(5):
        sign_in(client, "root", f"guess-{n}", admin=True)
    response = sign_in(client, "root", PASSWORD, admin=True)

    assert "sign-in is locked" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_lock_expires_and_a_success_clears_the_count(client, settings, monkeypatch):
    UserFactory(username="bob", roles=["collector"])
    settings.COINSITE_LOGIN_LOCKOUT_SECONDS = 60
    clock = [1_000_000.0]
    monkeypatch.setattr(lockout.time, "time", lambda: clock[0])
    for n in range(5):
        sign_in(client, "bob", f"guess-{n}")
    assert sign_in(client, "bob", PASSWORD).status_code == 429

    clock[0] += 61  # the lock has run out (the cache entry itself lives as long; its deadline decides)
    assert sign_in(client, "bob", PASSWORD).status_code == 302
    client.logout()

    for n in range(4):  # a success cleared the count: four more wrong tries do not lock
        sign_in(client, "bob", f"guess-{n}")
    assert sign_in(client, "bob", PASSWORD).status_code == 302


def test_tries_while_locked_do_not_extend_the_lock(client, settings, monkeypatch):
    UserFactory(username="carol", roles=["collector"])
    clock = [2_000_000.0]
    monkeypatch.setattr(lockout.time, "time", lambda: clock[0])
    for n in range(5):
        sign_in(client, "carol", f"guess-{n}")
    clock[0] += 600
    for n in range(20):
        sign_in(client, "carol", f"more-{n}")

    assert lockout.seconds_locked("carol") == 300


def test_other_accounts_are_not_locked(client):
    UserFactory(username="dave", roles=["collector"])
    UserFactory(username="erin", roles=["collector"])
    for n in range(6):
        sign_in(client, "dave", f"guess-{n}")

    assert sign_in(client, "erin", PASSWORD).status_code == 302

