"""The exception a training loop raises when asked to stop, without torch: the site's run services catch it in
processes (the admin's, beat's) that must not load torch just to name it; train.py re-exports it."""


class TrainingCancelled(Exception):
    """should_stop() asked to stop; nothing of the run may be used."""
