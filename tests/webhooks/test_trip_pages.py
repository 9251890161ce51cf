"""Public pages: /t/<slug> with its preview tags, card and poster; /j/<handle> with a track record from the
database; product photos by id. Trips are set up the way people do it — in chat (the playground)."""

from __future__ import annotations

import io
import os
import re

from PIL import Image

from tests.support.harness import AppUnderTest
from tests.support.images import photo_bytes
from tests.support.playground import Visitor

CONFIG = {"payments": {"gateways": ["sandbox"]}, "whatsapp": {"display_number": "6281100000000"}}


def noisy_photo(side: int = 1600) -> bytes:
    """A photo that compresses badly (random pixels): the worst case for the card's 300 KB limit."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


async def trip_with_products(v: Visitor) -> None:
    await v.ask("tina", "TRIP BARU jpn25 Jastip Jepang <Desember> | 2099-12-31 20:00", "Trip jpn25 dibuat")
    await v.ask("tina", "PRODUK jpn25 KK1 150rb 5 KitKat Matcha", "Produk KK1 ditambahkan")
    await v.ask("tina", "PRODUK jpn25 TK1 85rb 1 Tokyo Banana", "Produk TK1 ditambahkan")
    await v.ask("siti", "JOIN jpn25 | Nama: Siti Rahasia", "Kamu ikut trip")
    await v.ask("siti", "PESAN TK1 1", "Pesanan P1 dibuat")  # the last Tokyo Banana: sold out


async def test_the_trip_page_shows_products_prices_and_stock_with_preview_tags_and_no_participant(
        tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await trip_with_products(v)
        page = await app.http.get("/t/jpn25")
        html = page.text
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<h1>Jastip Jepang &lt;Desember&gt;</h1>" in html  # escaped, never markup
        assert "KitKat Matcha" in html and "Rp150.000" in html and "Stok 5" in html
        assert "Tokyo Banana" in html and "Habis" in html
        assert "31-12-2099 20:00 WIB" in html and "hari lagi" in html
        assert "https://wa.me/6281100000000?text=JOIN%20jpn25" in html
        assert "https://wa.me/6281100000000?text=PESAN%20jpn25%20KK1" in html
        assert "PESAN%20jpn25%20TK1" not in html  # sold out: no order button
        # Privacy: no participant, no order, no phone number of a person.
        assert "Siti" not in html and "P1" not in html
        head_end = html.index("</head>")
        assert len(html[:head_end].encode()) < 300_000
        for tag in ("og:title", "og:description", "og:url", "og:image"):
            content = re.search(rf'<meta property="{tag}" content="([^"]+)"', html[:head_end])
            assert content is not None and content.group(1).strip(), tag
        assert f'<meta property="og:image" content="{app.url}/t/jpn25/card.jpg">' in html
        assert f'<meta property="og:url" content="{app.url}/t/jpn25">' in html
        assert '<meta name="twitter:card" content="summary_large_image">' in html
        english = await app.http.get("/t/jpn25?lang=en")
        assert "Sold out" in english.text and "Products" in english.text and 'lang="en"' in english.text


async def test_the_trip_page_is_cached_until_the_trip_or_a_product_changes(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await trip_with_products(v)
        first = await app.http.get("/t/jpn25")
        etag = first.headers["ETag"]
        assert "max-age" in first.headers["Cache-Control"]
        unchanged = await app.http.get("/t/jpn25", headers={"If-None-Match": etag})
        assert unchanged.status_code == 304 and unchanged.content == b""
        await v.ask("tina", "UBAH KK1 stok 9", "Produk KK1 sekarang")
        changed = await app.http.get("/t/jpn25", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["ETag"] != etag and "Stok 9" in changed.text


async def test_an_unknown_trip_or_profile_gets_a_friendly_404_page(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app:
        for path in ("/t/nothere", "/t/../../etc", "/j/nobody", "/t/nothere/card.jpg", "/t/nothere/poster.png"):
            page = await app.http.get(path)
            assert page.status_code == 404, path
        page = await app.http.get("/t/nothere")
        assert "Halaman tidak ditemukan" in page.text and "<h1>" in page.text
        assert "Page not found" in (await app.http.get("/j/nobody?lang=en")).text


async def test_the_preview_card_is_a_1200x630_jpeg_under_300_kb_even_with_large_noisy_photos(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await v.ask("tina", "TRIP BARU kor01 Jastip Korea Skincare Musim Dingin Lengkap | 2099-12-31 20:00",
                    "Trip kor01 dibuat")
        for code in ("SK1", "SK2", "SK3"):
            await v.ask("tina", f"PRODUK kor01 {code} 120rb 4 Serum {code}", f"Produk {code} ditambahkan",
                        photo=noisy_photo())
        card = await app.http.get("/t/kor01/card.jpg")
        assert card.status_code == 200 and card.headers["content-type"] == "image/jpeg"
        assert len(card.content) <= 300_000
        with Image.open(io.BytesIO(card.content)) as image:
            assert image.format == "JPEG" and image.size == (1200, 630)
        again = await app.http.get("/t/kor01/card.jpg", headers={"If-None-Match": card.headers["ETag"]})
        assert again.status_code == 304
        poster = await app.http.get("/t/kor01/poster.png")
        with Image.open(io.BytesIO(poster.content)) as image:
            assert image.format == "PNG" and image.size == (1080, 1920)


async def test_a_profile_shows_open_trips_and_a_track_record_computed_from_orders(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await trip_with_products(v)
        await v.ask("tina", "PROFIL tina_jastip", f"{app.url}/j/tina_jastip")
        page = (await app.http.get("/j/tina_jastip")).text
        assert "Tina" in page and "@tina_jastip" in page and "/t/jpn25" in page
        assert "belum ada" in page  # nothing shipped yet: no on-time share to show
        # The manual flow to a shipped order: proof, confirmation, shipping.
        await v.ask("siti", "BAYAR P1", "P1", photo=photo_bytes())
        await v.ask("tina", "KONFIRMASI P1", "P1 dikonfirmasi")
        await v.ask("tina", "KIRIM P1 JNE 1234567890", "P1 ditandai dikirim")
        await v.ask("tina", "TUTUP jpn25", "Trip jpn25 ditutup")
        page = (await app.http.get("/j/tina_jastip")).text
        record = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", page))
        assert record["Trip selesai"] == "1" and record["Pesanan dikirim"] == "1"
        assert record["Dikirim ≤ deadline + 14 hari"] == "100%"
        assert "Siti" not in page
        # The handle is unique.
        taken = await v.ask("rina", "PROFIL tina_jastip", "sudah dipakai")
        assert "tina_jastip" in taken["text"]


async def test_no_route_serves_a_payment_proof_or_takes_a_path(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await trip_with_products(v)
        await v.ask("siti", "BAYAR P1", "P1", photo=photo_bytes())
        proofs = list((tmp_path / "media").rglob("*"))
        assert any("proof" in str(p) for p in proofs)
        for path in ("/media/proofs/x.jpg", "/media/products/999.jpg", "/media/products/..%2Fproofs.jpg",
                     "/static/../services/media.py"):
            assert (await app.http.get(path)).status_code == 404, path


async def test_the_chat_shares_the_page_and_a_product_deep_link_places_the_order(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await trip_with_products(v)
        detail = await v.ask("tina", "TRIP jpn25", "Halaman trip")
        assert f"{app.url}/t/jpn25" in detail["text"] and "KK1" in detail["text"]
        # What t.me/<bot>?start=order_jpn25_KK1 sends (/start with its parameter): an order for that product.
        await v.ask("siti", "start order_jpn25_KK1", "Pesanan P2 dibuat", "KitKat Matcha")
        # Slugs and codes may hold "_": the split is where a real trip's slug ends.
        await v.ask("tina", "TRIP BARU a_b Jastip AB | 2099-12-31 20:00", "Trip a_b dibuat")
        await v.ask("tina", "PRODUK a_b X_1 10rb 2 Kue", "Produk X_1 ditambahkan")
        await v.ask("rina", "JOIN a_b | Nama: Rina", "Kamu ikut trip")
        await v.ask("rina", "start order_a_b_X_1", "Pesanan P3 dibuat", "Kue")
