"""What model owners touch: frozen datasets and training runs (the registry's mirror rows are registry.models)."""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class DatasetVersion(models.Model):
    """The training data of a run, frozen: coin ids, image hashes and years, identified by their content hash."""

    class Kind(models.TextChoices):
        TRAINING = "training", "Training"
        EVALUATION = "evaluation", "Evaluation"

    content_hash = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.TRAINING)
    manifest = models.JSONField(help_text="[{coin_id, front_sha256, back_sha256, year, weight}, ...]")
    coin_count = models.PositiveIntegerField(default=0)
    year_min = models.PositiveSmallIntegerField(null=True, blank=True)
    year_max = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} dataset {self.content_hash[:10]} ({self.coin_count} coins)"


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Verdict(models.TextChoices):
        NONE = "", "—"
        RECOMMENDED = "recommended", "Recommended"
        REJECTED = "rejected", "Rejected"
        PROMOTED = "promoted", "Promoted"

    class Origin(models.TextChoices):
        """Who or what started a run: the list's "by" column says it as it was, not guessed from requested_by."""

        UNRECORDED = "", "not recorded"  # runs queued before the origin was kept
        SCHEDULE = "schedule", "schedule"  # beat's retrain_if_enough_labels_task
        OWNER = "owner", "model owner"  # Start training in the admin (requested_by names who)
        COMMAND = "command", "command"  # manage.py train / retrain, scripts
        BOOTSTRAP = "bootstrap", "first-run set-up"  # `make run`'s bootstrap_demo: the first model
        SWEEP = "sweep", "sweep"  # the best configuration of a hyperparameter sweep (training.services.sweeps)

    config = models.JSONField(default=dict)
    dataset_version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs"
    )
    evaluation_dataset = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="evaluation_runs"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    verdict = models.CharField(max_length=12, choices=Verdict.choices, default="", blank=True)
    fine_tune = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    comparison = models.JSONField(default=dict, blank=True)
    progress = models.JSONField(default=dict, blank=True, help_text="{fold, folds, epoch, epochs}")
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    origin = models.CharField(max_length=12, choices=Origin.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="The training lease: refreshed while the run works; stale = worker died."
    )
    finalising_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Fold-parallel runs: when a worker claimed the finalisation (ensemble, registration, comparison).",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("start_trainingrun", "Can start and cancel training runs")]
        constraints = [
            # The training lock lives in the database: at most one run is RUNNING at a time (any host, any worker).
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="running"), name="trainingrun_one_running"
            ),
        ]

    def __str__(self) -> str:
        return f"Training run #{self.pk} ({self.status})"

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class TrainingFold(models.Model):
    """One fold of a fold-parallel training run: which worker trains it, how far it is, and, once done, its output
    (weights and held-out answers, training.ml.folds.FoldOutput bytes) until the run is finalised.

    The rows are the record of completion that the finaliser waits for (not a Celery chord, whose callback can be
    lost: celery #4207, #5229, #8211); the output lives in the database so that workers on hosts that share no disk
    hand it over through the one store they all reach.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="folds")
    index = models.PositiveSmallIntegerField(help_text="0-based fold number")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the process training it")
    epoch = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    output = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="trainingfold_one_per_index")]

    def __str__(self) -> str:
        return f"fold {self.index + 1} of training run #{self.run_id} ({self.status})"


class CoinPhotoStats(models.Model):
    """Simple statistics of one coin's photos (the two sides averaged), measured once and kept: the owners'
    monitoring page compares those of the photos served each week with those of a version's training coins (input
    drift), and decoding hundreds of photos on every page load would make it slow.

    Measured on the centred square of the photo at 64 px (the stored thumbnail when there is one), through the same
    bounded decode as serving (training.ml.decoding). Shares and levels are fractions 0..1. A photo that cannot be
    decoded any more keeps a row with its error and no numbers, so it is not tried again on every load.
    """

    class Source(models.TextChoices):
        THUMBNAIL = "thumbnail", "Thumbnails"
        PHOTO = "photo", "Photos"
        NONE = "", "Not measurable"

    coin = models.OneToOneField("predictions.Coin", on_delete=models.CASCADE, related_name="photo_stats")
    brightness = models.FloatField(null=True, blank=True, help_text="Mean luma (Rec. 601), 0 black .. 1 white.")
    contrast = models.FloatField(null=True, blank=True, help_text="Standard deviation of the luma.")
    saturation = models.FloatField(null=True, blank=True, help_text="Mean HSV saturation.")
    sharpness = models.FloatField(null=True, blank=True, help_text="Mean absolute Laplacian of the luma.")
    red = models.FloatField(null=True, blank=True)
    green = models.FloatField(null=True, blank=True)
    blue = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, blank=True, default="")
    error = models.CharField(max_length=300, blank=True)
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "coin photo statistics"
        verbose_name_plural = "coin photo statistics"

    def __str__(self) -> str:
        return f"photo statistics of coin #{self.coin_id}"


class OutOfFoldPrediction(models.Model):
    """One training coin's answer from models that never trained on it, kept at the end of every training run: its
    fold's model (K-fold cross-validation), or for the calibration holdout the K fold models together. The curators'
    "suspect labels" list (training.services.label_check) compares them with the verified years: a label that
    held-out models contradict with confidence is worth a second look (confident learning, as cleanlab does it).

    p_label and p_top come from the date reader's year distribution at the run's calibrated temperature; the
    regression head has none, so they stay empty and the list ranks by the distance in years instead.
    """

    training_run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="out_of_fold")
    coin = models.ForeignKey("predictions.Coin", on_delete=models.CASCADE, related_name="out_of_fold_predictions")
    label_year = models.PositiveSmallIntegerField(help_text="The year the run trained on (its frozen dataset's).")
    predicted_year = models.SmallIntegerField(help_text="The held-out models' answer.")
    fold = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="1-based; empty for the calibration holdout, which no fold model saw."
    )
    p_label = models.FloatField(null=True, blank=True, help_text="Probability of the label's year, 0..1.")
    p_top = models.FloatField(null=True, blank=True, help_text="Probability of the predicted (most likely) year.")

    class Meta:
        verbose_name = "out-of-fold prediction"
        constraints = [
            models.UniqueConstraint(fields=["training_run", "coin"], name="outoffold_one_per_run_and_coin"),
        ]

    def __str__(self) -> str:
        return (
            f"coin #{self.coin_id}: {self.predicted_year} against label {self.label_year} (run #{self.training_run_id})"
        )


class MonitoringSnapshot(models.Model):
    """The owners' monitoring page's figures for one window (`weeks`), computed in the background and read by the page.

    Computing them measures the photo statistics of new coins and reads every prediction of the window: 6.3-8.7 s
    on a first view after uploads when the page did it in the request. A task (beat, or the embedded default's own
    thread) refreshes this row; the page reads it in one query and says how old it is
    (training.services.monitoring_snapshot).
    """

    weeks = models.PositiveSmallIntegerField(unique=True, help_text="The window: the last `weeks` weeks.")
    name = models.CharField(max_length=200, blank=True, help_text="The registered model the figures are of.")
    report = models.JSONField(
        default=dict, blank=True, encoder=DjangoJSONEncoder, help_text="training.services.monitoring.MonitoringReport"
    )
    figures = models.JSONField(default=list, blank=True, help_text="[{title, uri (a PNG data: URL), alt}, ...]")
    digest = models.CharField(
        max_length=64, blank=True, help_text="What the figures show: redrawn only when it changes."
    )
    computed_at = models.DateTimeField(null=True, blank=True, help_text="When the figures were computed.")
    compute_seconds = models.FloatField(null=True, blank=True, help_text="How long computing them took.")
    requested_at = models.DateTimeField(
        null=True, blank=True, help_text="A refresh asked for and not finished yet (none: none pending)."
    )

    class Meta:
        verbose_name = "monitoring snapshot"

    def __str__(self) -> str:
        return f"monitoring figures of the last {self.weeks} weeks"


class Sweep(models.Model):
    """A hyperparameter sweep: an Optuna study (its trials in the study's RDB storage, in this database), one Celery
    task per trial, an MLflow parent run, and at the end a normal training run of the best configuration.

    At most one sweep is RUNNING (a partial unique constraint, as for training runs): two sweeps would otherwise share
    the training workers without anyone noticing, each taking twice as long as its progress promised."""

    Status = TrainingRun.Status  # the same five states as a training run

    space = models.JSONField(help_text="The parsed search space (training.ml.tune.SearchSpace.to_dict()).")
    space_path = models.CharField(max_length=500, blank=True)
    trials_wanted = models.PositiveIntegerField()
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="No new trial starts after this.")
    dataset_version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="sweeps"
    )
    base_config = models.JSONField(default=dict, help_text="The configuration every trial starts from.")
    study_name = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    train_best = models.BooleanField(default=True, help_text="Train the best configuration as a run at the end.")
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    best_value = models.FloatField(null=True, blank=True, help_text="Best cross-validated MAE (years).")
    best_trial = models.IntegerField(null=True, blank=True)
    best_params = models.JSONField(default=dict, blank=True)
    default_value = models.FloatField(null=True, blank=True, help_text="Trial 0: the base configuration's CV MAE.")
    training_run = models.ForeignKey(
        TrainingRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sweeps",
        help_text="The normal run of the best configuration (registered, compared with Production).",
    )
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="sweeps"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    finalising_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=models.Q(status="running"), name="sweep_one_running"),
        ]

    def __str__(self) -> str:
        return f"Sweep #{self.pk} ({self.status})"


class SweepTrial(models.Model):
    """One trial task of a sweep: the lease unit, as TrainingFold is for a fold. ``number`` is the Optuna trial it
    runs; a task whose worker died is given a new Optuna trial (the dead one is told FAILED), up to
    TRAINING_FOLD_ATTEMPTS times, so the sweep still ends with the trials it was asked for."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        COMPLETE = "complete", "Complete"
        PRUNED = "pruned", "Pruned"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"  # cancelled, or the sweep's timeout passed before it started

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="trials")
    index = models.PositiveIntegerField(help_text="0-based task number")
    number = models.IntegerField(null=True, blank=True, help_text="The Optuna trial number of the latest attempt")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    lost_numbers = models.JSONField(default=list, blank=True, help_text="Optuna trials failed by a dead worker")
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the process running it")
    epoch = models.PositiveIntegerField(default=0, help_text="Epochs trained so far, over all folds")
    value = models.FloatField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["sweep", "index"]
        constraints = [models.UniqueConstraint(fields=["sweep", "index"], name="sweeptrial_one_per_index")]

    def __str__(self) -> str:
        return f"trial task {self.index + 1} of sweep #{self.sweep_id} ({self.status})"
