"""The command registry: every command declared once — the words people type (Indonesian first, English
aliases after), its handler, its place in the help text and the Telegram menu, and the prefix its buttons
carry. The grammar, the router, the help text and the Telegram adapter all read this one table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from handlers import admin, broadcasts, chat, orders, recap, trips, wallet, withdrawals
from handlers.context import Services
from handlers.i18n import Translator
from services.messaging import OutgoingMessage
from services.wallet import UserView

Feature = Callable[[Services, UserView, Translator, str], Awaitable[list[OutgoingMessage]]]


class Role(StrEnum):
    """Who a command is for; the help text has one section per role."""

    START = "start"
    WALLET = "wallet"
    BUYER = "buyer"
    JASTIPER = "jastiper"


@dataclass(frozen=True)
class CommandSpec:
    name: str
    words: tuple[str, ...]  # what people type; phrases of several words are allowed ("cek saldo")
    handler: Feature
    role: Role
    help: str | None = None  # catalog key of its line in the help text
    menu: str | None = None  # catalog key of its Telegram menu description (None: not in the menu)


@dataclass(frozen=True)
class ButtonSpec:
    prefix: str  # callback data is "<prefix>:<value>"
    handler: Feature


COMMANDS: tuple[CommandSpec, ...] = (
    # Greetings open the welcome; this is the one list of them (also "/start" and the join deep links).
    CommandSpec("start", ("start", "mulai", "menu", "halo", "hai", "hi", "hallo", "helo", "hello", "hey", "p",
                          "pagi", "siang", "sore", "malam", "selamat pagi", "selamat siang", "selamat sore",
                          "selamat malam", "assalamualaikum", "assalamu'alaikum", "asalamualaikum"),
                chat.start, Role.START, menu="menu_start"),
    CommandSpec("bantuan", ("bantuan", "help", "panduan", "tolong", "cara"), chat.bantuan, Role.START,
                help="help_bantuan", menu="menu_bantuan"),
    CommandSpec("terimakasih", ("terima kasih", "terimakasih", "makasih", "makasi", "mksh", "trims", "tq", "thx",
                                "thanks", "thank you", "tengkyu"), chat.thanks, Role.START),
    CommandSpec("support", ("cs", "min", "support", "customer service"), chat.support, Role.START),
    # Admins get their commands (ADMIN ...); anyone else who types "admin" gets the support hint.
    CommandSpec("admin", ("admin",), admin.admin, Role.START),
    # Wallet
    CommandSpec("topup", ("topup", "top up", "isi saldo", "isi", "isisaldo", "deposit"), wallet.topup,
                Role.WALLET, help="help_topup", menu="menu_topup"),
    CommandSpec("saldo", ("saldo", "cek saldo", "lihat saldo", "balance"), wallet.saldo, Role.WALLET,
                help="help_saldo", menu="menu_saldo"),
    CommandSpec("riwayat", ("riwayat", "mutasi", "history"), wallet.riwayat, Role.WALLET,
                help="help_riwayat", menu="menu_riwayat"),
    CommandSpec("cek", ("cek", "cek pembayaran", "check"), wallet.cek, Role.WALLET, help="help_cek",
                menu="menu_cek"),
    CommandSpec("bahasa", ("bahasa", "language", "lang"), wallet.bahasa, Role.WALLET, help="help_bahasa",
                menu="menu_bahasa"),
    # Jastip: buyers
    CommandSpec("join", ("join", "gabung", "ikut"), trips.join, Role.BUYER, help="help_join"),
    CommandSpec("info", ("info",), trips.info, Role.BUYER, help="help_info"),
    CommandSpec("pesan", ("pesan", "order", "beli"), orders.pesan, Role.BUYER, help="help_pesan"),
    CommandSpec("bayar", ("bayar", "pay"), orders.bayar_text, Role.BUYER, help="help_bayar"),
    CommandSpec("pesananku", ("pesananku", "pesanan saya", "my orders"), orders.pesananku, Role.BUYER,
                help="help_pesananku", menu="menu_pesananku"),
    CommandSpec("batal", ("batal", "cancel"), orders.batal, Role.BUYER, help="help_batal"),
    CommandSpec("terima", ("terima", "diterima", "received"), orders.terima, Role.BUYER, help="help_terima"),
    CommandSpec("komplain", ("komplain", "complain", "complaint", "keluhan"), orders.komplain, Role.BUYER,
                help="help_komplain"),
    CommandSpec("belumsampai", ("belumsampai", "belum sampai", "not arrived"), orders.belumsampai, Role.BUYER,
                help="help_belumsampai"),
    CommandSpec("stop", ("stop", "berhenti", "unsubscribe"), trips.stop, Role.BUYER, help="help_stop"),
    # Jastip: jastipers
    CommandSpec("trip", ("trip", "trips"), trips.trip, Role.JASTIPER, help="help_trip", menu="menu_trip"),
    CommandSpec("produk", ("produk", "product"), trips.produk, Role.JASTIPER, help="help_produk"),
    CommandSpec("ubah", ("ubah", "edit"), trips.ubah, Role.JASTIPER, help="help_ubah"),
    CommandSpec("hapus", ("hapus", "delete"), trips.hapus, Role.JASTIPER, help="help_hapus"),
    CommandSpec("pembayaran", ("pembayaran", "payment"), trips.pembayaran, Role.JASTIPER, help="help_pembayaran"),
    CommandSpec("peserta", ("peserta", "participants"), trips.peserta, Role.JASTIPER, help="help_peserta"),
    CommandSpec("pesanan", ("pesanan", "orders"), orders.pesanan, Role.JASTIPER, help="help_pesanan"),
    CommandSpec("konfirmasi", ("konfirmasi", "confirm"), orders.konfirmasi, Role.JASTIPER, help="help_konfirmasi"),
    CommandSpec("tolak", ("tolak", "reject"), orders.tolak, Role.JASTIPER, help="help_tolak"),
    CommandSpec("kirim", ("kirim", "ship"), orders.kirim, Role.JASTIPER, help="help_kirim"),
    CommandSpec("rekap", ("rekap", "recap"), recap.rekap, Role.JASTIPER, help="help_rekap"),
    CommandSpec("broadcast", ("broadcast", "siaran"), broadcasts.broadcast, Role.JASTIPER, help="help_broadcast"),
    CommandSpec("tutup", ("tutup", "close"), trips.tutup, Role.JASTIPER, help="help_tutup"),
    CommandSpec("buka", ("buka", "open", "reopen"), trips.buka, Role.JASTIPER, help="help_buka"),
    CommandSpec("deadline", ("deadline",), trips.deadline, Role.JASTIPER, help="help_deadline"),
    CommandSpec("profil", ("profil", "profile"), trips.profil, Role.JASTIPER, help="help_profil"),
    CommandSpec("batalkan", ("batalkan", "cancel trip"), orders.batalkan, Role.JASTIPER, help="help_batalkan"),
    CommandSpec("dp", ("dp", "down payment", "uang muka"), orders.dp, Role.JASTIPER, help="help_dp"),
    CommandSpec("tiba", ("tiba", "arrived"), orders.tiba, Role.JASTIPER, help="help_tiba"),
    CommandSpec("rekening", ("rekening", "bank account", "payout account"), withdrawals.rekening, Role.JASTIPER,
                help="help_rekening"),
    CommandSpec("tarik", ("tarik", "tarik saldo", "tarik dana", "penarikan", "withdraw"), withdrawals.tarik,
                Role.JASTIPER, help="help_tarik"),
)

BUTTONS: tuple[ButtonSpec, ...] = (
    ButtonSpec("topup", wallet.topup),
    ButtonSpec("lang", wallet.bahasa),
    ButtonSpec("help", chat.bantuan),
    ButtonSpec("cmd", chat.command_button),
    ButtonSpec("bc", broadcasts.broadcast_button),
    ButtonSpec("ann", broadcasts.announce_button),
    ButtonSpec("ord", orders.order_button),
    ButtonSpec("adm", admin.admin_button),
    ButtonSpec("wd", withdrawals.withdraw_button),
)

BY_NAME: dict[str, CommandSpec] = {spec.name: spec for spec in COMMANDS}
BUTTON_HANDLERS: dict[str, Feature] = {spec.prefix: spec.handler for spec in BUTTONS}


def _phrases() -> dict[str, str]:
    table: dict[str, str] = {}
    for spec in COMMANDS:
        for words in spec.words:
            key = " ".join(words.lower().split())
            if key in table and table[key] != spec.name:
                raise ValueError(f"'{key}' is declared for both {table[key]} and {spec.name}")
            table[key] = spec.name
    return table


PHRASES: dict[str, str] = _phrases()
LONGEST_PHRASE = max(len(p.split()) for p in PHRASES)


def menu_commands(t: Translator) -> list[tuple[str, str]]:
    """The Telegram menu (setMyCommands): (command, description) in the translator's language."""
    return [(spec.name, t(spec.menu)) for spec in COMMANDS if spec.menu]


def help_lines(t: Translator, role: Role) -> list[str]:
    return [t(spec.help) for spec in COMMANDS if spec.role == role and spec.help]
