"""Images users send (payment proofs, product photos): type checked by their bytes, stored under the media dir."""

from __future__ import annotations

from pathlib import Path

from services.errors import UserInputError

_MAGIC = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"))


def image_type(data: bytes) -> str:
    """jpg / png / webp from the file's own bytes (never from a name or a claimed MIME type)."""
    for magic, extension in _MAGIC:
        if data.startswith(magic):
            return extension
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise UserInputError("proof_wrong_type")


def store_image(media_dir: Path, folder: str, stem: str, data: bytes, max_bytes: int) -> Path:
    """Check and write an image; returns its path."""
    extension = image_type(data)
    if len(data) > max_bytes:
        raise UserInputError("proof_too_large", maximum=f"{max_bytes // 1_000_000} MB")
    path = media_dir / folder / f"{stem}.{extension}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
