"""The read services' errors: what went wrong in the domain's words, not in HTTP's.

A service raises one of these with a message a user can act on; app/main.py maps each class
to its HTTP status once (NotFound 404, Conflict 409, Invalid 422), and the message becomes
the response's `detail` unchanged. Nothing under app/services or app/db raises HTTPException.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request the services cannot answer; `str(err)` is the message for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(ServiceError):
    """What the request names does not exist: a host, a cache, a scenario."""


class Conflict(ServiceError):
    """What the request names exists, but its data cannot answer the request yet."""


class TooLittleHistory(Conflict):
    """A host has too few scrapes to fit the model to."""


class NoScrape(Conflict):
    """A host is known but has no scrape stored yet."""


class Invalid(ServiceError):
    """The request is well formed but its values cannot be served (a metric, a range)."""
