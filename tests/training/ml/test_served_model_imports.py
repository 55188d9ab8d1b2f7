"""Loading a served model imports the model code, not the coin generator or the pretraining loop: a served process
(web with the model, an inference worker) has no use for them, and model.py reached them through pretrain.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_model_loading_code_imports_no_generator():
    # given a fresh interpreter
    code = (
        "import json, sys; sys.path.insert(0, '.')\n"
        "import training.ml.ensemble, training.ml.tracking.loading\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('training.ml.synthetic')"
        " or m in ('training.ml.negatives', 'training.ml.pretrain'))))\n"
    )

    # when it imports what loads a registered version
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)

    # then none of the generator's modules (synthetic and its parts, synthetic_*) came with it
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
