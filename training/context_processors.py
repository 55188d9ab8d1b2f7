"""Every page's word on a first model that is on its way (`make run` trains it while the site is served)."""

from __future__ import annotations

from .services.first_model import first_model_progress


def first_model(request) -> dict:
    """`first_model`: a callable the template calls only where no model is in production (base.html's banner), so
    pages with a model pay no query for it."""
    return {"first_model": first_model_progress}
