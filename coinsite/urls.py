from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerSplitView

from coinsite import health, metrics
from coinsite.lockout import LockoutAdminAuthenticationForm
from coinsite.schema import SchemaView

# The admin's sign-in refuses locked accounts like the site's (coinsite.lockout).
admin.site.login_form = LockoutAdminAuthenticationForm
admin.site.site_header = admin.site.site_title = "Coinsite administration"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SchemaView.as_view(), name="schema"),  # generated once per process (coinsite/schema.py)
    # The split view serves Swagger UI's init script as its own file (?script): no inline script, so the page passes
    # the Content-Security-Policy (coinsite/csp.py); the template moves the page's inline style to static/.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api/swagger_ui.html"),
        name="swagger-ui",
    ),
    path("api/", include("predictions.api_urls")),
    path("", include("predictions.urls")),
]

handler400 = "coinsite.errors.bad_request"
