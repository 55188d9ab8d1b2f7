"""Drawn coins with a date the OCR can read, for the OCR and fusion tests (no engine, no model: plain Pillow)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont


def dated_coin(text: str, *, turn: int = 0, size: int = 256) -> bytes:
    """A gold disc on green with ``text`` across its lower half, turned ``turn`` degrees, as a JPEG."""
    image = Image.new("RGB", (size, size), (40, 90, 60))
    draw = ImageDraw.Draw(image)
    draw.ellipse((size * 0.07, size * 0.07, size * 0.93, size * 0.93), fill=(200, 170, 90))
    draw.text(
        (size / 2, size * 0.59), text, font=ImageFont.load_default(size=size // 5), fill=(70, 50, 20), anchor="mm"
    )
    buffer = io.BytesIO()
    image.rotate(turn).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
