"""The conversation, written once for every channel. Other layers use only what is named here."""

from handlers.context import ShareLinks
from handlers.i18n import WIB, Translator, render_notice

__all__ = ["WIB", "ShareLinks", "Translator", "render_notice"]
