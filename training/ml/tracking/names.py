"""The names the site and the tracking modules share (the registered model, the experiment, the Production alias,
a run's artifact files), in a module that imports nothing: pages, the admin and the registry's mirror use them
in processes that never talk to MLflow, and ``import mlflow`` alone costs 160 MB of RSS."""

DEFAULT_MODEL_NAME = "coin-year"
DEFAULT_EXPERIMENT = "coin-year"
PRODUCTION_ALIAS = "production"

# Run artifacts written by TrainingTracker.log_result.
METRICS_JSON = "metrics.json"
MANIFEST_JSON = "dataset_manifest.json"
LEARNING_CURVES_PNG = "plots/learning_curves.png"
PRED_VS_TRUE_PNG = "plots/predicted_vs_true.png"
INTERVAL_PNG = "plots/interval_sharpness.png"
ERROR_BY_DECADE_PNG = "plots/error_by_decade.png"
