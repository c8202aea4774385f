"""Small real images for photo uploads (photos are decoded and cleaned on upload)."""

from __future__ import annotations

import io
import uuid
from typing import Any

from PIL import Image, ImageDraw


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48), **save: Any) -> bytes:
    """A unique picture (random colours and a stripe) in `fmt`; `save` goes to Image.save."""
    seed = uuid.uuid4().bytes
    img = Image.new("RGB", size, (seed[0], seed[1], seed[2]))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, size[0] // 3, size[1]), fill=(seed[3], seed[4], seed[5]))
    out = io.BytesIO()
    img.save(out, fmt, **save)
    return out.getvalue()
