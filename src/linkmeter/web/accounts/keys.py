"""The API key format, with no Django: ``lmk_<id>_<secret><checksum>``, a CRC32 checksum so a malformed key is
refused before any lookup, and the HMAC-SHA256 keyed hash that is all the database keeps of the secret."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

PREFIX = "lmk_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 12  # public: shown in lists and logs as lmk_<id>
SECRET_LENGTH = 32  # 190 bits
CHECKSUM_LENGTH = 6  # CRC32 in base62
MAX_PRESENTED = 200  # longer header values are refused without further work
_SHAPE = re.compile(rf"{PREFIX}([0-9A-Za-z]{{{ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})"
                    rf"([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key_id: str  # "lmk_<id>": the public id
    secret: str


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate() -> tuple[str, ParsedKey]:
    """A new key: (the full key to show once, its parts)."""
    key_id = PREFIX + _random(ID_LENGTH)
    secret = _random(SECRET_LENGTH)
    body = f"{key_id}_{secret}"
    return body + checksum(body), ParsedKey(key_id, secret)


def parse(presented: str) -> ParsedKey | None:
    """The key's parts, or None when it is not shaped like a key or its checksum is wrong (a typo, a
    truncated copy, a guess): no lookup is worth making then."""
    if len(presented) > MAX_PRESENTED:
        return None
    match = _SHAPE.fullmatch(presented)
    if match is None:
        return None
    key_id, secret, check = PREFIX + match.group(1), match.group(2), match.group(3)
    if not hmac.compare_digest(checksum(f"{key_id}_{secret}"), check):
        return None
    return ParsedKey(key_id, secret)


def public_id(presented: str) -> str | None:
    """The public id of something shaped like a key (for a log line), else None; never the secret."""
    match = _SHAPE.fullmatch(presented[:MAX_PRESENTED])
    return PREFIX + match.group(1) if match else None


def hash_secret(server_secret: bytes, parsed: ParsedKey) -> str:
    """HMAC-SHA256 of id and secret under the server's secret: a leaked table alone reveals no key."""
    message = f"{parsed.key_id}:{parsed.secret}".encode("ascii")
    return hmac.new(server_secret, message, hashlib.sha256).hexdigest()


def hashes_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))
