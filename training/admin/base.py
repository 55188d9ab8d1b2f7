"""What every ModelAdmin of the training admin shares: history is read-only, the admin's own CSS/JS, custom pages."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import URLPattern, path

from predictions.admin import ReadOnlyMixin

from .views import AdminPageView

ASSETS = forms.Media(css={"all": ["admin-training/admin.css"]}, js=["admin-training/admin.js"])


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """History is shown, never edited by hand: no add, change or delete, for anyone (superusers included)."""

    @property
    def media(self) -> forms.Media:
        return super().media + ASSETS

    def page_urls(self, *pages: tuple[str, type[AdminPageView], str]) -> list[URLPattern]:
        """(route, view class, name suffix) -> URL patterns named admin:<app>_<model>_<suffix>, each page behind
        the admin's login and CSRF checks (admin_view), with this ModelAdmin as its model_admin."""
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(route, self.admin_site.admin_view(view.as_view(model_admin=self)), name=f"{info}_{suffix}")
            for route, view, suffix in pages
        ]
