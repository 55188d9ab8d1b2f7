"""The bench's inputs: generated coin photos at phone size (12 MP) and at the size apps upload after resizing (600 px).

The generator is training.ml.synthetic (no Django), so the client processes can import this module cheaply.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image, ImageFilter

SIZES = {"12MP": (4000, 3000), "600px": (600, 600)}
SEEDS = {"12MP": 11, "600px": 12}


def photo_pairs(size: tuple[int, int], count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """Generated coin photos upscaled to `size` with sensor-like noise, so JPEGs weigh what phone photos weigh."""
    from training.ml.synthetic import iter_coins  # the ML library: imported only where photos are made

    rng = np.random.default_rng(seed)
    pairs = []
    for front, back, _year in iter_coins(count, seed=seed, size=512):
        sides = []
        for data in (front, back):
            image = Image.open(io.BytesIO(data)).convert("RGB").resize(size, Image.Resampling.BICUBIC)
            if size[0] * size[1] > 1_000_000:
                noise = rng.normal(0, 6, (size[1], size[0], 3))
                image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8))
                image = image.filter(ImageFilter.SHARPEN)
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=92)
            sides.append(buffer.getvalue())
        pairs.append((sides[0], sides[1]))
    return pairs


def body(pair: tuple[bytes, bytes]) -> bytes:
    """The Model-Serving JSON of one pair, as both /api/predict and `mlflow models serve` take it."""
    return json.dumps(
        {
            "inputs": [
                {
                    "front_image_base64": base64.b64encode(pair[0]).decode(),
                    "back_image_base64": base64.b64encode(pair[1]).decode(),
                }
            ]
        }
    ).encode()
