"""training/ml is plain PyTorch: importing the model and the training loop pulls in neither Django nor MLflow."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_model_and_train_import_no_django_and_no_mlflow():
    code = (
        "import sys, training.ml.model, training.ml.train, training.ml.kfold, training.ml.images, training.ml.data;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'mlflow', 'rest_framework', 'celery'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
