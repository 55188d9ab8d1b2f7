"""/api/...: the DRF API (the schema and Swagger UI are routed in coinsite/urls.py)."""

from django.urls import path, re_path

from . import apis

urlpatterns = [
    path("predict", apis.PredictApi.as_view(), name="api-predict"),
    path("predict/", apis.PredictSlashApi.as_view(), name="api-predict-slash"),
    path("coins/", apis.CoinListCreateApi.as_view(), name="api-coin-list"),
    # Any id text reaches the view, so a malformed id is a JSON 404 like a missing one (not the site's HTML 404);
    # [\s\S], not `.`, so an id with a line break in it does too.
    re_path(r"^coins/(?P<id>[\s\S]+)/\Z", apis.CoinDetailApi.as_view(), name="api-coin-detail"),
    path("models/production", apis.ProductionModelApi.as_view(), name="api-model-production"),
    path("token", apis.TokenApi.as_view(), name="api-token"),
]
