"""Who may open the web page: anyone on this box when it listens on loopback, else users with a password.

Passwords are kept as scrypt hashes (``scrypt$n$r$p$salt$hash``, standard
library, salted per user) in the config's ``web.users``; the page asks with
HTTP basic authentication, which the browser remembers for the session.
Basic authentication sends the password readable on the wire: across an
untrusted network put the page behind a TLS proxy (docs/WEB.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

#: scrypt cost: 2**14 rounds with 8-byte blocks take about 50 ms and 16 MiB, once per request.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str, salt: bytes | None = None) -> str:
    """The ``web.users`` entry for ``password``."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), *encoded])


def password_matches(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` (a :func:`hash_password` string) was made from."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        found = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(found, expected)


class Access:
    """Checks each request's ``Authorization`` header against ``users`` (name: hash); open when not ``required``.

    Example:
        >>> Access({}, required=False).user(None)
        'local'
    """

    def __init__(self, users: dict[str, str], required: bool) -> None:
        self.users = dict(users)
        self.required = required
        self._recent: dict[str, str] = {}  # header -> user: scrypt once per browser session, not per request

    def user(self, authorization: str | None) -> str | None:
        """The user a request comes from ('local' when no password is needed); None: refuse it."""
        if not self.required:
            return "local"
        if not authorization or not authorization.startswith("Basic "):
            return None
        if authorization in self._recent:
            return self._recent[authorization]
        try:
            name, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        stored = self.users.get(name)
        if stored is None or not password_matches(password, stored):
            return None
        if len(self._recent) > 64:
            self._recent.clear()
        self._recent[authorization] = name
        return name
