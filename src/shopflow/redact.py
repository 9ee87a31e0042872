"""Credentials out of everything a person or a log can read.

Connection URLs carry passwords (``postgresql://user:secret@host/db``,
``redis://:secret@host``). Any message that names a URL (a connection error, a log line, a
ledger detail, a report) goes through :func:`redact`, so the password never reaches task
logs, the ledger or a report, whatever the driver's own message repeats.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (user, host and path kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def redact(text: str, *urls: str | None) -> str:
    """``text`` with every given URL redacted and their passwords masked wherever they occur
    (a driver's message may repeat the password, quoted or decoded)."""
    for url in urls:
        if not url:
            continue
        text = text.replace(url, redact_url(url))
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        for secret in {password, unquote(password or "")}:
            if secret:
                text = text.replace(secret, MASK)
    return text
