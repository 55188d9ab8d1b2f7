"""The site under gunicorn with production settings: DEBUG off, a real secret key, allowed hosts, HTTPS on behind a
proxy. The deployment's own steps prepare it (the Procfile's release step: migrate + collectstatic), and every page
answers 200 with a Content-Security-Policy, static files included; a missing page is the site's own 404.

The server runs the embedded default in its own folder (SQLite, Celery in-process, no model registered yet) and
without PYTEST_VERSION, so it reads the settings exactly as a deployment does. Nothing here needs PostgreSQL or Redis:
it never skips.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
import requests

from tests.processes import stop_group
from training.ml.synthetic import iter_coins

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PASSWORD = "a-long-admin-phrase-42"
# The variables of this test process that would make the server anything but a fresh production deployment.
NOT_INHERITED = ("PYTEST_VERSION", "DATABASE_URL", "CELERY_BROKER_URL", "MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_ROOT")
STATIC_LINK = re.compile(r"""(?:href|src)="(/static/[^"]+)\"""")
ADMIN_CHANGELIST = re.compile(r"""href="(/admin/\w+/\w+/)\"""")
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/(?:ld\+)?json\")[^>]*>", re.I)
INLINE_HANDLER_OR_STYLE = re.compile(r"<[a-z][^>]*\s(?:on[a-z]+|style)\s*=", re.I)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED and not k.startswith("DJANGO_")}
    env.update(
        {
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "COINSITE_VAR_DIR": str(var_dir),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "WEB_CONCURRENCY": "1",
            "GUNICORN_THREADS": "2",
        }
    )
    return env


def release_command() -> str:
    """The Procfile's `release:` step, as a platform runs it before starting the processes."""
    for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "release":
            return command.strip().replace(".venv/bin/", f"{VENV_BIN}/")
    raise AssertionError("the Procfile has no release step")


def run(command: str, env: dict[str, str]) -> str:
    result = subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def gunicorn_start(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, str]:
    """gunicorn as the Procfile starts it (gunicorn.conf.py from the root), on a free port: (process, base URL)."""
    port = free_port()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "coinsite.wsgi", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return server, f"http://127.0.0.1:{port}"


def gunicorn_stop(server: subprocess.Popen) -> None:
    stop_group(server, grace_seconds=30, kill_seconds=10)  # gunicorn's graceful shutdown may take its workers' time


class ProxiedClient:
    """Talks to the server as a TLS-terminating proxy forwards a browser: X-Forwarded-Proto https, and the cookies sent
    back by hand (they are Secure, so an http client would keep them to itself)."""

    def __init__(self, base: str):
        self.base = base
        self.origin = "https://" + base.split("://", 1)[1]
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"X-Forwarded-Proto": "https", **kwargs.pop("headers", {})}
        if method == "POST":
            headers.update({"Origin": self.origin, "Referer": self.origin + path})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        response = requests.request(
            method, self.base + path, headers=headers, allow_redirects=False, timeout=60, **kwargs
        )
        for header in response.raw.headers.getlist("Set-Cookie"):
            self.set_cookie_headers.append(header)
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, data: dict[str, str], **kwargs) -> requests.Response:
        page = self.get(path)
        assert page.status_code == 200, (path, page.status_code)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return self.request("POST", path, data={"csrfmiddlewaretoken": token, **data}, **kwargs)


@pytest.fixture
def production_server(tmp_path):
    """gunicorn (gunicorn.conf.py, as deployed) serving a release-prepared site with production settings: (client,
    log path). A superuser `admin` exists."""
    env = production_env(tmp_path / "var")
    started = time.monotonic()
    run(release_command(), env)
    run(
        f"{shlex.quote(sys.executable)} manage.py createsuperuser --noinput --username admin --email admin@example.org",
        {**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
    )
    prepared = time.monotonic() - started

    log_path = tmp_path / "gunicorn.log"
    server, url = gunicorn_start(env, log_path)
    client = ProxiedClient(url)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, "gunicorn exited:\n" + log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "gunicorn did not answer:\n" + log_path.read_text(errors="replace")
            try:
                if client.get("/accounts/login/").status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        print(f"release + superuser {prepared:.1f} s, gunicorn up after {time.monotonic() - started - prepared:.1f} s")
        client.cookies.clear()
        yield client, log_path
    finally:
        gunicorn_stop(server)


def check_page(client: ProxiedClient, path: str, static: set[str]) -> str:
    """GET path: 200, a Content-Security-Policy, no inline script/handler/style the policy would block. Collects the
    page's static links into `static`; returns the HTML."""
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.headers.get("Location"))
    policy = response.headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy, (path, policy)
    html = response.text
    if "text/html" in response.headers["Content-Type"]:
        nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
        blocked = [tag for tag in INLINE_SCRIPT.findall(html) if f'nonce="{nonce}"' not in tag]
        assert not blocked, (path, blocked)
        assert not INLINE_HANDLER_OR_STYLE.findall(html), (path, INLINE_HANDLER_OR_STYLE.findall(html)[:3])
        static.update(STATIC_LINK.findall(html))
    return html


def test_every_page_answers_200_with_a_csp_under_gunicorn_with_production_settings(production_server):
    client, log_path = production_server
    static: set[str] = set()

    # HTTPS is on, as in production: plain http is redirected, https answers with HSTS and Secure cookies
    plain = requests.get(client.base + "/accounts/login/", allow_redirects=False, timeout=30)
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://"), plain.status_code
    login_page = client.get("/accounts/login/")
    assert "max-age=" in login_page.headers["Strict-Transport-Security"]

    # the pages of a visitor
    for path in ("/", "/accounts/login/", "/accounts/signup/"):
        check_page(client, path, static)

    # signing in (CSRF checked against the https origin, as behind the proxy)
    signed_in = client.post_form("/accounts/login/", {"username": "admin", "password": PASSWORD})
    assert signed_in.status_code == 302, signed_in.text[:500]
    assert "sessionid" in client.cookies
    assert all("Secure" in header for header in client.set_cookie_headers), client.set_cookie_headers

    # a coin, uploaded through the page (no model is registered yet: it waits for one)
    front, back, _year = next(iter_coins(1, seed=31))
    uploaded = client.post_form(
        "/coins/upload/",
        {},
        files={"front_image": ("front.jpg", front, "image/jpeg"), "back_image": ("back.jpg", back, "image/jpeg")},
    )
    assert uploaded.status_code == 302, uploaded.text[:2000]
    coin_path = uploaded.headers["Location"]
    assert re.fullmatch(r"/coins/\d+/", coin_path), coin_path

    # the collector's pages
    for path in ("/", "/coins/upload/", coin_path, coin_path + "front/", coin_path + "status.json"):
        check_page(client, path, static)

    # the admin: its index and every changelist it links
    index = check_page(client, "/admin/", static)
    changelists = sorted(set(ADMIN_CHANGELIST.findall(index)))
    assert len(changelists) >= 8, changelists
    for path in changelists:
        check_page(client, path, static)

    # the API docs (Swagger UI and its init script, a file of its own) and the schema
    docs = check_page(client, "/api/docs/", static)
    script = re.search(r'<script src="([^"]*\?[^"]*script=[^"]*)"', docs).group(1).replace("&amp;", "&")
    assert "SwaggerUIBundle" in check_page(client, script, static)
    assert "openapi:" in check_page(client, "/api/schema/", static)

    # every static file the pages link answers 200 from whitenoise, under its hashed (manifest) name
    assert any(re.fullmatch(r"/static/css/site\.[0-9a-f]{12}\.css", link) for link in static), sorted(static)
    for link in sorted(static):
        response = client.get(link)
        assert response.status_code == 200, (link, response.status_code)
        assert "Content-Security-Policy" in response.headers, link

    # a missing page is the site's own 404, not Django's debug page
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404
    assert "There is nothing here" in missing.text
    assert "Content-Security-Policy" in missing.headers
    for debug_text in ("Traceback", "DEBUG = True", "Django tried these URL patterns"):
        assert debug_text not in missing.text

    # and the server logged no error along the way
    log = log_path.read_text(errors="replace")
    assert "Internal Server Error" not in log and "Traceback" not in log, log[-5000:]
