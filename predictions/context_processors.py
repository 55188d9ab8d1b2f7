"""The active model version and its cross-validated MAE, shown in every page's footer."""

from registry.selectors import production_model_version


def active_model(request) -> dict:
    return {"active_model_version": production_model_version()}
