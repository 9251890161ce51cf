"""Share images for a trip, drawn with Pillow: the link-preview card (1200×630 JPEG, at most 300 KB — WhatsApp
shows no image above that) and the story poster (1080×1920 PNG with a QR code that opens the JOIN deep link).
Pure functions of the trip's public facts and product photos; the route caches them by those facts."""

from __future__ import annotations

import io
from collections.abc import Sequence

import qrcode
from PIL import Image, ImageDraw, ImageFont, ImageOps

CARD_SIZE = (1200, 630)
POSTER_SIZE = (1080, 1920)
CARD_MAX_BYTES = 300_000
BRAND = (11, 110, 79)
INK = (255, 255, 255)
SOFT = (214, 240, 229)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int, max_lines: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = word
        while draw.textlength(line, font=font) > width and len(line) > 1:  # one very long word
            line = line[:-1]
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(".") + "…"
    return lines


def _photo(data: bytes, size: tuple[int, int]) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return ImageOps.fit(image.convert("RGB"), size)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def card_jpeg(*, title: str, owner: str, deadline: str, prices: str, photos: Sequence[bytes]) -> bytes:
    """The link-preview card; the JPEG quality goes down step by step until it fits in 300 KB."""
    image = Image.new("RGB", CARD_SIZE, BRAND)
    draw = ImageDraw.Draw(image)
    pictures = [p for p in (_photo(data, (300, 300)) for data in photos[:3]) if p is not None]
    text_width = 1100 if not pictures else 560
    y = 60
    draw.text((60, y), f"Jastip · {owner}"[:60], font=_font(34), fill=SOFT)
    y += 70
    for line in _wrap(draw, title, _font(64), text_width, 3):
        draw.text((60, y), line, font=_font(64), fill=INK)
        y += 78
    y += 20
    draw.text((60, y), deadline, font=_font(36), fill=SOFT)
    if prices:
        draw.text((60, y + 56), prices, font=_font(40), fill=INK)
    draw.text((60, 560), "Titip", font=_font(32), fill=SOFT)
    for index, picture in enumerate(pictures):
        x, top = 660 + (index % 2) * 260, 40 + (index // 2) * 280 if len(pictures) > 1 else 165
        if len(pictures) == 1:
            x = 760
        image.paste(picture.resize((240, 240)) if len(pictures) > 1 else picture, (x, top))
    quality = 90
    while True:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, optimize=True, progressive=True)
        if buffer.tell() <= CARD_MAX_BYTES or quality <= 20:
            return buffer.getvalue()
        quality -= 10


def poster_png(*, title: str, owner: str, deadline: str, join_url: str, how: str) -> bytes:
    """A story poster: title, jastiper, deadline, and a QR code that opens the JOIN deep link."""
    image = Image.new("RGB", POSTER_SIZE, BRAND)
    draw = ImageDraw.Draw(image)
    y = 180
    draw.text((90, y), f"Jastip · {owner}"[:40], font=_font(48), fill=SOFT)
    y += 110
    for line in _wrap(draw, title, _font(96), 900, 4):
        draw.text((90, y), line, font=_font(96), fill=INK)
        y += 112
    y += 30
    draw.text((90, y), deadline, font=_font(50), fill=SOFT)
    code = qrcode.QRCode(border=2, box_size=12, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(join_url)
    code.make(fit=True)
    qr = code.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    qr = qr.resize((720, 720), Image.NEAREST)
    image.paste(qr, (180, 1000))
    for index, line in enumerate(_wrap(draw, how, _font(46), 900, 2)):
        draw.text((90, 1760 + index * 56), line, font=_font(46), fill=INK)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
