"""The Content-Security-Policy in a real browser: the main pages load without a single violation, and their scripts
still work (Swagger UI renders the operations, admin.js sizes the bars, django-celery-beat's form script runs).

Playwright drives Debian's headless Chromium against the live server (tests/conftest.py). Violations are caught both
ways Chromium reports them: the `securitypolicyviolation` event and the console message.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from tests.factories import CoinFactory, UserFactory
from training.models import TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TIMEOUT_MS = 30_000
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.violatedDirective + " blocked " + (event.blockedURI || "inline") +
    " at " + event.sourceFile + ":" + event.lineNumber);
});
"""


def test_main_pages_raise_no_csp_violation_and_their_scripts_work(browser, live_server, transactional_db):
    # given a superuser with a coin, and a failed training run that got 30 % of the way
    boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
    coin = CoinFactory(owner=boss)
    TrainingRun.objects.create(
        status=TrainingRun.Status.FAILED, progress={"fold": 2, "folds": 5, "epoch": 10, "epochs": 20}, error="boom"
    )
    base = live_server.url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []

    def on_console(message) -> None:
        if "Content Security Policy" in message.text:
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))

    def visit(path: str) -> None:
        response = page.goto(base + path, wait_until="load")
        assert response.status == 200, (path, response.status)
        assert "content-security-policy" in response.headers, path  # Playwright lower-cases the names
        page.wait_for_load_state("networkidle")
        problems.extend(f"{path}: {violation}" for violation in page.evaluate("window.__cspViolations"))

    # when a visitor opens the landing page and signs in
    visit("/")
    visit(reverse("login"))
    page.fill("#id_username", "boss")
    page.fill("#id_password", "correct-horse-battery")
    page.click("form.stack button[type=submit]")
    page.wait_for_url(base + reverse("coin-list"))

    # and opens the collector's pages
    for path in (reverse("coin-list"), reverse("coin-upload"), reverse("coin-detail", args=[coin.pk])):
        visit(path)
    assert page.eval_on_selector_all(".photo img", "imgs => imgs.map(i => i.naturalWidth > 0)") == [True, True]

    # and the admin: index, a changelist whose bars admin.js sizes, django-celery-beat's periodic task form
    visit(reverse("admin:index"))
    visit(reverse("admin:training_trainingrun_changelist"))
    assert page.eval_on_selector(".mt-progress__bar", "bar => bar.style.width") == "30%"
    visit(reverse("admin:django_celery_beat_periodictask_add"))
    assert not page.is_visible(".field-crontab_translation")

    # and the API docs: Swagger UI renders the operations from the schema
    visit(reverse("swagger-ui"))
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() >= 5
    page.screenshot(path=str(ARTIFACTS / "csp-swagger-ui.png"), full_page=False)

    # then no page reported a violation or a script error
    assert problems == []
    context.close()
