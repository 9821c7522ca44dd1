"""Push tokens: made here, stored only as their SHA-256 (the server never keeps a token)."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_MIN_CHARS = 16


def new_token() -> str:
    """A fresh push token: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()
