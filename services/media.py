"""Images people send (payment proofs, product photos): proven to be images by decoding them, re-encoded
before they are kept, stored under names nobody can guess.

Re-encoding drops everything but the pixels, EXIF and GPS included: a buyer's home location must not travel
to the jastiper inside a photo. Proofs live under `<media_dir>/proofs/`, which no web route serves; product
photos are served only through a route that looks them up by product id.
"""

from __future__ import annotations

import io
import secrets
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from services.errors import UserInputError

# A photo from a phone is ~12 MP; anything far beyond that is a decompression bomb, not a proof.
MAX_PIXELS = 40_000_000
MAX_SIDE = 2048  # what is kept: enough to read a transfer receipt, small enough to forward
_FORMATS = {"JPEG", "PNG", "WEBP"}


def reencode(data: bytes, max_bytes: int) -> bytes:
    """The image as a clean JPEG (no metadata, at most MAX_SIDE px); UserInputError if it is not a JPEG, PNG or
    WebP image, or is too large."""
    if len(data) > max_bytes:
        raise UserInputError("proof_too_large", maximum=f"{max_bytes // 1_000_000} MB")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in _FORMATS:
                raise UserInputError("proof_wrong_type")
            if probe.width * probe.height > MAX_PIXELS:
                raise UserInputError("proof_wrong_type")
            probe.verify()  # structure and checksums; the image must be reopened after verify()
        with Image.open(io.BytesIO(data)) as opened:
            image: Image.Image = ImageOps.exif_transpose(opened)  # keep the photo upright once its EXIF is gone
            if image.mode not in ("RGB", "L"):
                background = Image.new("RGB", image.size, "white")
                rgba = image.convert("RGBA")
                background.paste(rgba, mask=rgba.getchannel("A"))
                image = background
            image.thumbnail((MAX_SIDE, MAX_SIDE))
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=85, optimize=True)
            return out.getvalue()
    except UserInputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise UserInputError("proof_wrong_type") from None


def store_image(media_dir: Path, folder: str, prefix: str, data: bytes) -> Path:
    """Write an already re-encoded JPEG under a name with a random part; returns its path."""
    path = media_dir / folder / f"{prefix}-{secrets.token_urlsafe(12)}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def remove(path: str | None) -> None:
    """Delete a file that was replaced; a missing file is fine."""
    if path:
        Path(path).unlink(missing_ok=True)


def read(path: str | None) -> bytes | None:
    """A kept image's bytes; None when there is none or the file is gone (the caller goes on without it)."""
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def remove_older_than(folder: Path, cutoff_epoch: float) -> int:
    """Delete the kept images in `folder` last written before `cutoff_epoch` (complaint evidence, whose paths
    live only in notices); how many were deleted."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.glob("*.jpg"):
        try:
            if path.stat().st_mtime < cutoff_epoch:
                path.unlink(missing_ok=True)
                removed += 1
        except OSError:
            continue
    return removed
