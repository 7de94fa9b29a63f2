"""Domain failures; the HTTP layer maps each to its status code and error body."""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnauthorizedError(DomainError):
    """Missing, malformed, forged or expired session token."""


class ForbiddenError(DomainError):
    """The resource exists but belongs to another user."""


class NotFoundError(DomainError):
    """No such resource."""


class InvalidInputError(DomainError):
    """The request is well-formed HTTP but its content is unacceptable."""


class TooLargeError(DomainError):
    """The request content is over a configured size limit."""


class ConflictError(DomainError):
    """A concurrent change won; the client may retry."""


class RateLimitedError(DomainError):
    """Too many requests of one kind from one session or address, counted over a window or
    still in flight (e.g. uploads being checked); retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnavailableError(DomainError):
    """A capability this server lacks right now (e.g. HyPhy is not installed)."""


class ValidationFailedError(InvalidInputError, ValueError):
    """Uploaded data has problems; `problems` (dicts with code, message, sequence,
    position, ...) go into the 422 body. A ValueError too, so assistant tools report it."""

    def __init__(self, message: str, problems: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.problems = problems


class InvalidDataError(InvalidInputError, ValueError):
    """A request body's fields are unacceptable (400, upstream's InvalidDataError):
    `errors` is one `{field, message}` per problem."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.errors = errors
