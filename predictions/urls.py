"""The collector pages and sign-in (the API lives in predictions.api_urls)."""

from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from coinsite.lockout import LockoutLoginView, LockoutPasswordResetConfirmView

from . import views

urlpatterns = [
    path("", views.coin_list, name="coin-list"),
    path("coins/upload/", views.coin_upload, name="coin-upload"),
    path("coins/<int:coin_id>/", views.coin_detail, name="coin-detail"),
    path("coins/<int:coin_id>/status.json", views.coin_status, name="coin-status"),
    path("coins/<int:coin_id>/delete/", views.coin_delete, name="coin-delete"),
    re_path(r"^coins/(?P<coin_id>[0-9]+)/(?P<side>front|back)/$", views.coin_image, name="coin-image"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", LockoutLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/token/", views.api_token, name="api-token"),
    path("accounts/password_reset/", views.ThrottledPasswordResetView.as_view(), name="password_reset"),
    path("accounts/password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        LockoutPasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
