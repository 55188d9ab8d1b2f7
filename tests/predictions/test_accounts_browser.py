"""Accounts in Chromium: a forgotten password is reset through the emailed link (which also ends a lockout), and a
collector makes, uses, rotates and revokes an API token on their token page."""

from __future__ import annotations

import re

import pytest
import requests
from django.core import mail
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TIMEOUT_MS = 30_000


def test_password_reset_end_to_end_also_ends_a_lockout(
    browser, live_server, transactional_db, django_db_serialized_rollback, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    base = live_server.url
    UserFactory(username="fay", email="fay@example.org", roles=["collector"])
    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    for n in range(5):  # locked out by wrong passwords
        page.goto(base + reverse("login"))
        page.fill("#id_username", "fay")
        page.fill("#id_password", f"guess-{n}")
        page.click("form button[type=submit]")

    page.goto(base + reverse("login"))
    page.click("text=Forgot your password?")
    page.fill("#id_email", "fay@example.org")
    page.click("form button[type=submit]")
    page.wait_for_url(base + reverse("password_reset_done"))
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["fay@example.org"]
    link = re.search(r"http://\S+/accounts/reset/\S+/", mail.outbox[0].body).group(0)

    page.goto(link)
    page.fill("#id_new_password1", "a-brand-new-phrase-77")
    page.fill("#id_new_password2", "a-brand-new-phrase-77")
    page.click("form button[type=submit]")
    page.wait_for_url(base + reverse("password_reset_complete"))

    page.goto(base + reverse("login"))
    page.fill("#id_username", "fay")
    page.fill("#id_password", "a-brand-new-phrase-77")
    page.click("form button[type=submit]")
    page.wait_for_url(base + reverse("coin-list"))
    page.context.close()


def test_token_page_makes_a_token_the_api_accepts_rotates_and_revokes_it(
    browser, live_server, transactional_db, django_db_serialized_rollback
):
    base = live_server.url
    UserFactory(username="gus", roles=["collector"])
    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(base + reverse("login"))
    page.fill("#id_username", "gus")
    page.fill("#id_password", "correct-horse-battery")
    page.click("form button[type=submit]")
    page.wait_for_url(base + reverse("coin-list"))

    page.click("text=API token")
    assert "You have no API token" in page.inner_text("[data-token-page]")
    page.click("[data-create]")
    first = page.input_value("[data-token-key]")

    def api_status(key: str) -> int:
        return requests.get(f"{base}/api/coins/", headers={"Authorization": f"Token {key}"}, timeout=30).status_code

    assert api_status(first) == 200
    page.goto(base + reverse("api-token"))
    assert f"…{first[-4:]}" in page.inner_text("[data-token-state]")  # never shown in full again

    page.click("[data-rotate]")
    second = page.input_value("[data-token-key]")
    assert second != first and api_status(first) == 401 and api_status(second) == 200

    page.click("[data-revoke]")
    assert "You have no API token" in page.inner_text("[data-token-page]")
    assert api_status(second) == 401
    page.context.close()
