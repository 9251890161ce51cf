"""Images as phones send them, for payment proofs and product photos."""

from __future__ import annotations


def photo_bytes(*, size: tuple[int, int] = (64, 48), with_gps: bool = True, fmt: str = "JPEG") -> bytes:
    """A real photo as a phone sends it: decodable, and (JPEG) carrying EXIF with a GPS position, which
    Titip must strip before anyone else sees the picture."""
    import io

    from PIL import Image

    image = Image.new("RGB", size, (200, 30, 60))
    out = io.BytesIO()
    if fmt == "JPEG" and with_gps:
        exif = Image.Exif()
        exif[0x010F] = "PhoneMaker"  # Make
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = "S", (6.0, 12.0, 30.0)  # latitude ref, latitude: somewhere in Jakarta
        gps[3], gps[4] = "E", (106.0, 49.0, 10.0)
        image.save(out, format="JPEG", exif=exif)
    else:
        image.save(out, format=fmt)
    return out.getvalue()
