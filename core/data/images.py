"""Decoding one image file into a uint8 array, the same way for every source.

:func:`read_image_bytes` decodes an uploaded image; :func:`decode_image` is
what the dataset loader calls for each file. Both accept only the formats in
:data:`PIL_FORMATS`, honour the EXIF orientation, drop alpha, convert to RGB
or grayscale, and resize with a Lanczos filter. 16-bit, 32-bit and float
images are scaled by their pixel format, not by each image's own range.

Names without a leading underscore that :mod:`core.data` does not re-export
(:class:`Unreadable`, :func:`decode_image`, :func:`zero_size_hint`,
:func:`check_image_args`, :data:`FORMATS_TEXT`) are for the package's other
modules only.
"""

from __future__ import annotations

import io
import struct
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.base.limits import too_many_pixels
from core.data.errors import DataError

# The pixel limit is ours (core.base.limits.max_pixels, checked from the header before anything is decoded,
# with one message). Pillow's own check would quote a second limit, and between its limit and twice it
# only warns (DecompressionBombWarning on stderr); this module is the one place untrusted images are
# decoded, so Pillow's is switched off.
Image.MAX_IMAGE_PIXELS = None

IMAGE_SIZE_RANGE = (8, 512)  # as ModelConfig.input_size
# Formats Pillow may decode. An allow-list: some of Pillow's plugins (EPS) run
# external programs, and a class folder may hold anything a student put there.
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)
FORMATS_TEXT = "PNG, JPEG, TIFF, BMP, GIF, WebP or PPM"
_RESAMPLE = Image.Resampling.LANCZOS


class Unreadable(Exception):
    """An image file that cannot be used; the message is the reason shown to the user."""


class TooLarge(Unreadable):
    """An image over the pixel limit (``core.base.limits.max_pixels``); ``width`` x ``height`` is its size."""

    def __init__(self, message: str, width: int, height: int):
        super().__init__(message)
        self.width, self.height = width, height


def zero_size_hint(head: bytes) -> str | None:
    """Pillow refuses images with a zero width or height; read the header to say so."""
    dims = None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        dims = struct.unpack(">II", head[16:24])
    elif head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        dims = struct.unpack("<HH", head[6:10])
    elif head[:2] == b"BM" and len(head) >= 26:
        dims = struct.unpack("<ii", head[18:26])
    if dims is not None and 0 in dims:
        return f"the image has zero size ({dims[0]} x {abs(dims[1])} pixels)"
    return None


def _high_depth_to_uint8(im: Image.Image, size: int) -> np.ndarray:
    """16-bit, 32-bit integer and float images -> 8-bit grayscale (H, W).

    Resized in float so no precision is lost before the final rounding. The
    scale follows the pixel format, not each image's own range, so relative
    brightness stays comparable across images: 16-bit 0..65535 maps to 0..255.
    For 32-bit integer and float images the range is guessed from the values:
    [0, 1] floats, 8-bit or 16-bit values, otherwise stretched min..max.
    """
    lo, hi = im.getextrema()
    f = im.convert("F")
    if f.size != (size, size):
        f = f.resize((size, size), _RESAMPLE, reducing_gap=3.0)
    a = np.asarray(f, dtype=np.float32)
    if im.mode.startswith("I;16"):
        a = a / 257.0
    elif im.mode == "F" and lo >= 0 and hi <= 1.0:
        a = a * 255.0
    elif lo >= 0 and hi <= 255:
        pass
    elif lo >= 0 and hi <= 65535:
        a = a / 257.0
    else:
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def decode_image(fp: str | BinaryIO, image_size: int, channels: int) -> np.ndarray:
    """Decode one image file to uint8 (image_size, image_size, channels).

    Args:
        fp: a path, or an open binary file.
        image_size: height = width of the result, in pixels.
        channels: 3 for RGB, 1 for grayscale.

    Raises:
        Unreadable: the file cannot be used; the message is the reason, for the user
            (:class:`TooLarge` when it is over the pixel limit).
    """
    return decode_sized(fp, image_size, channels)[0]


def decode_sized(fp: str | BinaryIO, image_size: int, channels: int) -> tuple[np.ndarray, int]:
    """:func:`decode_image`, and the image's own pixel count (width x height before resizing).

    The dataset loader keeps the largest count with the decoded images, so a
    cached read can be held to the pixel limit in force when it is opened again.
    """
    try:
        with Image.open(fp, formats=PIL_FORMATS) as im:
            w, h = im.size
            if w <= 0 or h <= 0:
                raise Unreadable(f"the image has zero size ({w} x {h} pixels)")
            too_big = too_many_pixels(w, h)
            if too_big:
                raise TooLarge(too_big, w, h)
            if im.format in ("JPEG", "MPO"):
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the image is much larger.
                im.draft("L" if channels == 1 else "RGB", (image_size, image_size))
            im.load()  # decode now, so truncated files fail here and not later
            if im.getexif().get(0x0112, 1) != 1:  # EXIF orientation: show it the way a viewer does
                im = ImageOps.exif_transpose(im)
            if im.mode.startswith("I") or im.mode == "F":
                a = _high_depth_to_uint8(im, image_size)
                return (a[:, :, None] if channels == 1 else np.repeat(a[:, :, None], 3, axis=2)), w * h
            if im.mode in ("P", "PA"):
                # Palette transparency must go through RGBA; like Keras' load_img, alpha is then dropped.
                im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
            target = "L" if channels == 1 else "RGB"
            if im.mode != target:
                im = im.convert(target)
            if im.size != (image_size, image_size):
                im = im.resize((image_size, image_size), _RESAMPLE, reducing_gap=3.0)
            a = np.asarray(im, dtype=np.uint8)
            return (a[:, :, None] if channels == 1 else a), w * h
    except Unreadable:
        raise
    except UnidentifiedImageError:
        raise Unreadable("not an image Pillow can read (damaged, or another kind of file with an image name)") from None
    except OSError as e:
        if "truncated" in str(e):
            raise Unreadable("the image is truncated: the file ends early (an interrupted copy or download?)") from None
        raise Unreadable(f"the image could not be read ({e})") from None
    except Exception as e:  # noqa: BLE001 - untrusted files make decoders raise anything
        raise Unreadable(f"the image could not be decoded ({type(e).__name__}: {e})") from None


def read_image_bytes(data: bytes, image_size: int = 64, channels: int = 3, name: str = "") -> np.ndarray:
    """Decode one uploaded image the way :func:`load_dataset` decodes a dataset's images.

    Args:
        data: the file's bytes.
        image_size: height = width of the result, in pixels.
        channels: 3 for RGB, 1 for grayscale.
        name: the file's name, used in error messages.

    Returns:
        uint8 array (image_size, image_size, channels).

    Raises:
        DataError: the bytes are empty or are not a readable image.
    """
    check_image_args("read_image_bytes", image_size, channels)
    what = f"The uploaded file '{name}'" if name else "The uploaded file"
    if not data:
        raise DataError(f"{what} is empty (0 bytes). Upload a {FORMATS_TEXT} image.")
    try:
        return decode_image(io.BytesIO(data), image_size, channels)
    except Unreadable as e:
        reason = zero_size_hint(bytes(data[:32])) or str(e)
        raise DataError(f"{what} cannot be used: {reason}. Upload a {FORMATS_TEXT} image.") from None


def check_image_args(owner: str, image_size: Any, channels: Any) -> None:
    lo, hi = IMAGE_SIZE_RANGE
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not lo <= image_size <= hi:
        raise DataError(
            f"The 'image_size' parameter of {owner} must be an integer in [{lo}, {hi}]. Got {image_size!r} instead."
        )
    if channels not in (1, 3) or isinstance(channels, bool):
        raise DataError(
            f"The 'channels' parameter of {owner} must be 1 (grayscale) or 3 (RGB). Got {channels!r} instead."
        )
