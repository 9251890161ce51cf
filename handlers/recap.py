"""REKAP <slug>: the trip's recap per participant and per product (the shopping list), as CSV and XLSX files."""

from __future__ import annotations

import csv
import io

from handlers.context import Services
from handlers.i18n import Translator
from services.errors import UserInputError
from services.messaging import OutgoingMessage
from services.orders import Recap, recap
from services.wallet import UserView

PARTICIPANT_HEADER = ("peserta", "kanal", "barang", "jumlah", "total_rp", "status")
PRODUCT_HEADER = ("kode", "produk", "harga_rp", "jumlah_dipesan", "total_rp", "sisa_stok")


def _participant_rows(data: Recap) -> list[tuple]:
    return [(p.name, p.channel, p.items, p.quantity, p.total, p.statuses) for p in data.participants]


def _product_rows(data: Recap) -> list[tuple]:
    return [(p.code, p.name, p.price, p.quantity, p.total, p.stock_left) for p in data.products]


def to_csv(header: tuple, rows: list[tuple]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")  # the BOM makes Excel read UTF-8 names correctly


def to_xlsx(data: Recap) -> bytes:
    from openpyxl import Workbook  # imported on use: only REKAP needs it

    book = Workbook()
    sheet = book.active
    sheet.title = "Peserta"
    sheet.append(PARTICIPANT_HEADER)
    for row in _participant_rows(data):
        sheet.append(row)
    products = book.create_sheet("Produk")
    products.append(PRODUCT_HEADER)
    for row in _product_rows(data):
        products.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def rekap(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """REKAP <slug> → a summary line plus CSV (participants, products) and XLSX documents."""
    parts = args.split()
    if not parts:
        raise UserInputError("trip_slug_usage")
    data = await recap(services.orders.db, user.id, parts[0])
    total = sum(p.total for p in data.participants)
    summary = t("recap_summary", slug=data.slug, participants=len(data.participants), total=total)
    return [
        OutgoingMessage(summary),
        OutgoingMessage(t("recap_participants_file"), document=to_csv(PARTICIPANT_HEADER, _participant_rows(data)),
                        document_name=f"rekap-{data.slug}-peserta.csv"),
        OutgoingMessage(t("recap_products_file"), document=to_csv(PRODUCT_HEADER, _product_rows(data)),
                        document_name=f"rekap-{data.slug}-produk.csv"),
        OutgoingMessage(t("recap_xlsx_file"), document=to_xlsx(data), document_name=f"rekap-{data.slug}.xlsx"),
    ]
