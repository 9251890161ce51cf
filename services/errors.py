"""The one error tree. Services raise these; the edges translate them (HTTP status, chat reply).

    TitipError
    ├── UserInputError            a chat user asked for something invalid   -> a helpful reply
    │   ├── AmountError           outside min/max, or not an amount        (carries min/max)
    │   └── InsufficientFunds     a debit larger than the balance
    ├── CallbackError             a gateway/messenger request we refuse
    │   ├── BadSignature          forged or unsigned                        -> 401
    │   └── MalformedCallback     unparseable or missing fields             -> 400
    ├── GatewayError              a gateway API call failed                 -> try the next gateway
    │   └── GatewayUnavailable    timeout, 5xx, refused: worth retrying later
    ├── AllGatewaysFailed         no configured gateway could create a link -> "try again later"
    ├── DeliveryError             a messenger refused a send
    │   ├── RetryLater            429 / 5xx / network / pair limit (carries retry_after, backoff base)
    │   ├── OutsideWindow         WhatsApp 131047: only a template may be sent now
    │   └── PermanentDeliveryError blocked bot, unknown chat, undeliverable
    ├── ClientRequestError        a client bot's API request we refuse (services/clients.py, deposits.py)
    │   ├── Unauthorized          bad or missing key, disabled, bad signature, stale, nonce reused -> 401
    │   ├── BadRequest            not JSON, a field missing or of the wrong type                -> 400
    │   ├── NotFound              no such deposit for this client                                -> 404
    │   ├── IdempotencyConflict   a deposit id used before for another amount or user            -> 409
    │   └── RateLimited           over api.rate_per_minute (carries retry_after)                 -> 429
    ├── OperatorError             an operator's command (python -m bot clients ...) cannot be done -> stderr, exit 1
    ├── LedgerConflict            a transfer reference posted before with other accounts or amount -> admins
    ├── StorageUnavailable        the database cannot be reached            -> 503 / "sistem sedang gangguan"
    └── StorageDataError          the database refused one row's data (too long, out of range): that item fails
        └── DataConflict          a unique or check constraint refused it (a reference used twice, a slug taken)

storage/ maps driver exceptions to the last two at one place (storage/errors.py), so nothing above it ever
sees a SQLAlchemy or driver exception.
"""

from __future__ import annotations


class TitipError(Exception):
    """Base of every error Titip raises on purpose."""


class UserInputError(TitipError):
    """Something a chat user asked for that cannot be done; `key` names the catalog message."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


class AmountError(UserInputError):
    pass


class InsufficientFunds(UserInputError):
    def __init__(self, balance: int, needed: int) -> None:
        super().__init__("insufficient_funds", balance=balance, needed=needed)
        self.balance = balance
        self.needed = needed


class CallbackError(TitipError):
    pass


class BadSignature(CallbackError):
    pass


class MalformedCallback(CallbackError):
    pass


class GatewayError(TitipError):
    def __init__(self, gateway: str, message: str) -> None:
        super().__init__(f"{gateway}: {message}")
        self.gateway = gateway


class GatewayUnavailable(GatewayError):
    pass


class AllGatewaysFailed(TitipError):
    def __init__(self, failures: list[str]) -> None:
        super().__init__("; ".join(failures) or "no gateway configured")
        self.failures = failures


class DeliveryError(TitipError):
    pass


class RetryLater(DeliveryError):
    def __init__(
        self, message: str, retry_after: float | None = None, *, chat_only: bool = False, backoff_base: float = 2.0,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status  # the HTTP status the destination answered, if it answered
        self.chat_only = chat_only  # only this recipient is over its limit (WhatsApp 131056)
        self.backoff_base = backoff_base


class OutsideWindow(DeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass


class ClientRequestError(TitipError):
    pass


class Unauthorized(ClientRequestError):
    pass


class BadRequest(ClientRequestError):
    pass


class NotFound(ClientRequestError):
    pass


class IdempotencyConflict(ClientRequestError):
    pass


class RateLimited(ClientRequestError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"over the rate limit; retry after {retry_after} s")
        self.retry_after = retry_after


class OperatorError(TitipError):
    """The message says what to do (set a setting, pick another name)."""


class StorageUnavailable(TitipError):
    pass


class StorageDataError(TitipError):
    """The database refused the data of one write (value too long, number out of range, constraint)."""


class DataConflict(StorageDataError):
    """A unique or check constraint refused the write: usually a retry or a race that lost, handled by the caller."""


class LedgerConflict(TitipError):
    """A reference was posted before with other accounts or another amount: never silently skipped."""

    def __init__(self, reference: str, detail: str) -> None:
        super().__init__(f"ledger conflict on {reference}: {detail}")
        self.reference = reference
