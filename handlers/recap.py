"""REKAP <slug>: the trip's recap per participant and per product (the shopping list), as CSV and XLSX files a
jastiper can open safely: headers and statuses in the user's language, Rupiah formatting, frozen header with
a filter, totals paid / unpaid, and each buyer's contact.

Every text cell is neutralised: a value starting with = + - @ (or a tab / carriage return) is prefixed with
an apostrophe so a spreadsheet never runs it as a formula (a participant named `=HYPERLINK(...)` stays text),
and characters XML cannot hold are removed so one odd name never breaks the file for the whole trip.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from handlers.context import Services
from handlers.i18n import Translator, local_time
from handlers.trips import words
from services.messaging import OutgoingMessage
from services.orders import PAID, Recap, RecapOrder
from services.text import clean_name
from services.wallet import UserView

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
RUPIAH_FORMAT = '"Rp"#,##0'


def safe_cell(value: object) -> object:
    """A cell value that a spreadsheet shows as written: numbers stay numbers, text can never be a formula."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    text = clean_name(str(value), 1000)  # drops control and invisible characters, which XML cannot all hold
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def contact(t: Translator, order: RecapOrder) -> str:
    """A link that opens a chat with the buyer (and, unlike +62… or @name, can never read as a formula)."""
    if order.channel == "whatsapp":
        return f"https://wa.me/{order.external_id}"
    if order.channel == "telegram":
        return f"https://t.me/{order.username}" if order.username else t("contact_telegram_no_username")
    return "-"


@dataclass(frozen=True)
class Sheet:
    title: str
    header: tuple[str, ...]
    rows: list[tuple[object, ...]]
    money_columns: tuple[int, ...]  # 0-based columns holding Rupiah
    totals: list[tuple[object, ...]]


def participant_sheet(t: Translator, data: Recap) -> Sheet:
    people: dict[tuple[str, str], dict] = {}
    for order in data.orders:
        entry = people.setdefault((order.channel, order.external_id), {
            "name": order.buyer, "contact": contact(t, order), "items": [], "quantity": 0, "paid": 0, "unpaid": 0,
            "statuses": []})
        entry["items"].append(f"{order.product_code}×{order.quantity}")
        entry["quantity"] += order.quantity
        if order.status != "refunded":
            entry["paid" if order.status in PAID else "unpaid"] += order.total
        status = t(f"order_status_{order.status}")
        if status not in entry["statuses"]:
            entry["statuses"].append(status)
    rows = [(p["name"], p["contact"], ", ".join(p["items"]), p["quantity"], p["paid"] + p["unpaid"], p["paid"],
             p["unpaid"], ", ".join(p["statuses"])) for p in people.values()]
    paid = sum(r[5] for r in rows)
    unpaid = sum(r[6] for r in rows)
    totals = [(t("recap_total"), "", "", sum(r[3] for r in rows), paid + unpaid, paid, unpaid, "")]
    header = tuple(t(f"recap_col_{name}") for name in
                   ("buyer", "contact", "items", "quantity", "total", "paid", "unpaid", "status"))
    return Sheet(t("recap_sheet_people"), header, rows, (4, 5, 6), totals)


ESCROW_COLUMNS = ("in_escrow", "released", "fee", "refunded")


def order_sheet(t: Translator, data: Recap) -> Sheet:
    rows = [(o.order, local_time(o.created_at), o.buyer, contact(t, o), o.product_code, o.product_name,
             o.quantity, o.unit_price, o.total, t(f"order_status_{o.status}")) for o in data.orders]
    header = tuple(t(f"recap_col_{name}") for name in
                   ("order", "time", "buyer", "contact", "code", "product", "quantity", "price", "total", "status"))
    if not any(o.payment_mode == "otomatis" for o in data.orders):
        return Sheet(t("recap_sheet_orders"), header, rows, (7, 8), [])
    # Paid through Titip: where each order's money is now, and the totals (what the jastiper can expect).
    money = [tuple(getattr(o, name) for name in ESCROW_COLUMNS) for o in data.orders]
    rows = [(*row, *amounts) for row, amounts in zip(rows, money, strict=True)]
    totals = [(t("recap_total"), "", "", "", "", "", "", "", "", "",
               *(sum(m[i] for m in money) for i in range(len(ESCROW_COLUMNS))))]
    header = (*header, *(t(f"recap_col_{name}") for name in ESCROW_COLUMNS))
    return Sheet(t("recap_sheet_orders"), header, rows, (7, 8, 10, 11, 12, 13), totals)


def product_sheet(t: Translator, data: Recap) -> Sheet:
    rows = [(p.code, p.name, p.price, p.quantity, p.total, p.stock_left) for p in data.products]
    header = tuple(t(f"recap_col_{name}") for name in ("code", "product", "price", "ordered", "total", "stock_left"))
    totals = [(t("recap_total"), "", "", sum(r[3] for r in rows), sum(r[4] for r in rows), "")]
    return Sheet(t("recap_sheet_products"), header, rows, (2, 4), totals)


def to_csv(sheet: Sheet) -> bytes:
    """RFC 4180 (CRLF line ends, quoted where needed) with a UTF-8 BOM, so Excel reads names correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(v) for v in sheet.header])
    for row in [*sheet.rows, *sheet.totals]:
        writer.writerow([safe_cell(v) for v in row])
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(sheets: Sequence[Sheet]) -> bytes:
    from openpyxl import Workbook  # imported on use: only REKAP needs it
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    for sheet in sheets:
        ws = book.create_sheet(safe_cell(sheet.title)[:31])
        ws.append([safe_cell(v) for v in sheet.header])
        for row in sheet.rows:
            ws.append([safe_cell(v) for v in row])
        last_data_row = ws.max_row
        for row in sheet.totals:
            ws.append([safe_cell(v) for v in row])
            for cell in ws[ws.max_row]:
                cell.font = Font(bold=True)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for column in sheet.money_columns:
            for (cell,) in ws.iter_rows(min_row=2, min_col=column + 1, max_col=column + 1):
                cell.number_format = RUPIAH_FORMAT
        for index in range(1, len(sheet.header) + 1):
            values = [str(c.value) for (c,) in ws.iter_rows(min_col=index, max_col=index) if c.value is not None]
            ws.column_dimensions[get_column_letter(index)].width = min(60, max(10, *(len(v) + 2 for v in values)))
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = f"A1:{get_column_letter(len(sheet.header))}{max(1, last_data_row)}"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def rekap(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """REKAP <slug> → a summary (paid / unpaid) plus CSV (participants, products) and an XLSX with every sheet."""
    slug = words(args, 1, "rekap")[0]
    data = await services.orders.recap(user.id, slug)
    people, products, orders = participant_sheet(t, data), product_sheet(t, data), order_sheet(t, data)
    paid = sum(o.total for o in data.orders if o.status in PAID)
    unpaid = sum(o.total for o in data.orders if o.status not in (*PAID, "refunded"))
    summary = t("recap_summary", slug=data.slug, participants=len(people.rows), orders=len(data.orders),
                paid=paid, unpaid=unpaid, total=paid + unpaid)
    if any(o.payment_mode == "otomatis" for o in data.orders):
        summary += "\n" + t("recap_escrow_summary", in_escrow=sum(o.in_escrow for o in data.orders),
                             released=sum(o.released for o in data.orders), fee=sum(o.fee for o in data.orders),
                             refunded=sum(o.refunded for o in data.orders))
    return [
        OutgoingMessage(summary),
        OutgoingMessage(t("recap_participants_file"), document=to_csv(people),
                        document_name=f"rekap-{data.slug}-peserta.csv"),
        OutgoingMessage(t("recap_products_file"), document=to_csv(products),
                        document_name=f"rekap-{data.slug}-produk.csv"),
        OutgoingMessage(t("recap_xlsx_file"), document=to_xlsx([people, orders, products]),
                        document_name=f"rekap-{data.slug}.xlsx"),
    ]
