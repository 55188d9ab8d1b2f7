"""Kept only so that model versions registered before training.ml.tracking existed still load; nothing new belongs here.

A version's pyfunc.py (the models-from-code file copied into every registered model) runs
``from training.ml.registry import predictor_from_files`` in load_context. The model ships its own copy of
training/ml, but a process that has already imported this repository's ``training`` (the Django workers, the
tests, a shell) resolves that import here, so removing this module would make those versions fail to load.
tests/training/ml/test_registered_before_move.py loads such a version. New code uses training.ml.tracking.
"""

from training.ml.tracking.loading import predictor_from_files

__all__ = ["predictor_from_files"]
