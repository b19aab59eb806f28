"""Decoding fundus photographs to RGB uint8, whatever the file holds.

Grayscale is replicated to three channels, an alpha channel is dropped (as PIL's
``convert("RGB")`` and torchvision do), 16-bit and float images are scaled to 8 bits, and
EXIF orientation is applied. The header is read first (Pillow, no pixel decode) so a
decompression bomb is refused before a byte of pixels is allocated.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# 200 megapixels: a 12,000 x 9,000 photograph (108 MP) passes, a 50,000 x 50,000 bomb does not.
MAX_PIXELS = 200_000_000

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ImageReadError(ValueError):
    """An input that cannot become an image; ``str()`` is one line: ``<file>: <reason>``."""

    def __init__(self, source: str | os.PathLike, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = str(source)
        self.reason = reason


def read_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as an (H, W, 3) RGB uint8 array, or raise ImageReadError."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory, not an image file") from None
    except OSError as e:
        raise ImageReadError(path, f"cannot read ({e.strerror or e})") from None
    return decode_image(data, source=path, max_pixels=max_pixels)


def decode_image(data: bytes, *, source: str | os.PathLike = "<bytes>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes as an (H, W, 3) RGB uint8 array, or raise ImageReadError."""
    probe_image(data, source=source, max_pixels=max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise ImageReadError(source, "not a decodable image (unknown format or corrupt data)")
    return _to_uint8(image)


def probe_image(data: bytes, *, source: str | os.PathLike = "<bytes>", max_pixels: int = MAX_PIXELS) -> None:
    """Every check short of decoding the pixels: not empty, header size within the limit, and a
    JPEG or PNG that is not truncated. Raises ImageReadError; cheap enough to vet a dataset."""
    if not data:
        raise ImageReadError(source, "empty file (0 bytes)")
    size = _header_size(data, source)
    if size is not None and size[0] * size[1] > max_pixels:
        w, h = size
        raise ImageReadError(source, f"{w}x{h} pixels exceeds the limit of {max_pixels:,} pixels")
    _check_complete(data, source)


def check_image_file(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> None:
    """``probe_image`` on a file: raises ImageReadError naming the file and the reason."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ImageReadError(path, f"cannot read ({e.strerror or e})") from None
    probe_image(data, source=path, max_pixels=max_pixels)


def _header_size(data: bytes, source) -> tuple[int, int] | None:
    """(width, height) from the header alone, or None for a format Pillow does not know."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            return header.size
    except Image.DecompressionBombError as e:
        raise ImageReadError(source, f"refused as a decompression bomb ({e})") from None
    except Exception:  # unidentified or broken header: let OpenCV have the last word
        return None


def _check_complete(data: bytes, source) -> None:
    """Refuse truncated JPEG and PNG files: their decoders return a half-grey image, not an error."""
    if data.startswith(_JPEG_MAGIC):
        # The end-of-image marker must follow the last start-of-scan (an EXIF thumbnail has its own pair).
        if data.find(b"\xff\xd9", max(data.rfind(b"\xff\xda"), 0)) < 0:
            raise ImageReadError(source, "truncated JPEG (no end-of-image marker)")
    elif data.startswith(_PNG_MAGIC) and data.rfind(b"IEND") < 0:
        raise ImageReadError(source, "truncated PNG (no IEND chunk)")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return cv2.convertScaleAbs(image, alpha=255.0 / 65535.0)
    # float images (TIFF, EXR, HDR): [0, 1] when in range, else scaled by their maximum
    image = image.astype(np.float32)
    peak = float(image.max()) if image.size else 1.0
    scale = 255.0 if peak <= 1.0 else 255.0 / peak
    return np.clip(image * scale + 0.5, 0, 255).astype(np.uint8)
