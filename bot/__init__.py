"""Composition root and channel adapters: settings, `python -m bot`, building and closing everything."""
