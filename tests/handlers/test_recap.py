"""REKAP files are safe to open: names that look like formulas stay text, characters XML cannot hold never
break the file, and the sheets are what a jastiper wants (Indonesian words, Rupiah, frozen filtered header,
totals paid / unpaid, each buyer's contact). On SQLite and PostgreSQL, through the real conversation."""

from __future__ import annotations

import csv
import io
import re

import openpyxl
import pytest

from handlers.recap import RUPIAH_FORMAT, safe_cell
from tests.handlers.conftest import JASTIPER, Talk, open_trip

HOSTILE = ['=HYPERLINK("http://evil.example/x","Klik")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3",
           "Bel\x07ls", "\tTab", "Nul\x00l"]


@pytest.mark.parametrize(("value", "cell"), [
    ('=HYPERLINK("x")', '\'=HYPERLINK("x")'), ("+62811", "'+62811"), ("-5", "'-5"), ("@me", "'@me"),
    ("\t=1", "'=1"), ("Siti", "Siti"), (300_000, 300_000), ("Bel\x07l", "Bell"), ("a\x00b", "ab"),
])
def test_a_cell_is_never_a_formula_and_never_an_illegal_character(value, cell):
    assert safe_cell(value) == cell


async def test_hostile_names_stay_text_and_the_recap_still_works_for_the_whole_trip(talk: Talk):
    await open_trip(talk, stock=100)
    for i, name in enumerate(HOSTILE):
        buyer = 5000 + i
        await talk(buyer, f"JOIN jpn25 | Nama: {name}", name=name, username=f"buyer{i}")
        order = re.search(r"P\d+", await talk.text(buyer, "PESAN KK1 2", name=name)).group(0)
        if i % 2 == 0:
            await talk(JASTIPER, f"KONFIRMASI {order}")
    replies = await talk(JASTIPER, "REKAP jpn25")
    assert replies[0].text == (f"Rekap jpn25: {len(HOSTILE)} peserta, {len(HOSTILE)} pesanan aktif, "
                               "total Rp2.100.000 — sudah dibayar Rp1.200.000, belum dibayar Rp900.000.")
    files = {r.document_name: r.document for r in replies if r.document}

    people = list(csv.reader(io.StringIO(files["rekap-jpn25-peserta.csv"].decode("utf-8-sig"))))
    names = [row[0] for row in people[1:-1]]
    assert all(not n.startswith(("=", "+", "-", "@", "\t")) for n in names)
    assert names[0] == '\'=HYPERLINK("http://evil.example/x","Klik")' and names[4] == "Bells"
    assert people[1][1] == "https://t.me/buyer0"  # the buyer's contact, as a link
    assert people[-1] == ["TOTAL", "", "", "14", "2100000", "1200000", "900000", ""]
    assert b"\r\n" in files["rekap-jpn25-peserta.csv"]  # RFC 4180 line ends

    book = openpyxl.load_workbook(io.BytesIO(files["rekap-jpn25.xlsx"]))
    sheet = book["Peserta"]
    cells = [c for row in sheet.iter_rows() for c in row]
    assert not any(c.data_type == "f" for c in cells)  # not one formula in the file
    assert [c.value for c in sheet[1]] == ["Pembeli", "Kontak", "Barang", "Jumlah", "Total (Rp)",
                                           "Sudah dibayar (Rp)", "Belum dibayar (Rp)", "Status"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref.startswith("A1:H")
    assert sheet["E2"].number_format == RUPIAH_FORMAT and sheet["E2"].value == 300_000
    statuses = {c.value for c in sheet["H"][1:-1]}
    assert statuses == {"lunas", "menunggu pembayaran"}
    assert sheet.column_dimensions["A"].width >= 10
    assert book.sheetnames == ["Peserta", "Pesanan", "Produk"]
    orders = book["Pesanan"]
    assert orders["J2"].value in ("lunas", "menunggu pembayaran") and orders["B2"].value.endswith("WIB")
