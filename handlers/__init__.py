"""The conversation, written once for every channel. Other layers use only what is named here."""

from handlers.i18n import Translator, render_notice

__all__ = ["Translator", "render_notice"]
