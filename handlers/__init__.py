"""The conversation, written once for every channel: grammar, feature handlers, translation catalogs."""
