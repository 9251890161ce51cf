"""The aiohttp application: payment callbacks, Telegram webhook, health, metrics, sandbox checkout pages."""
