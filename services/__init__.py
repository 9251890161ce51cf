"""Use cases and money rules, in plain values. Never imports a channel library or aiohttp."""
