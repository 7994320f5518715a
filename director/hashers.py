"""The admin's password hasher: Django's PBKDF2, computed off the event loop.

Django's default hasher spends about 250 ms of CPU on each password check (a million
PBKDF2 rounds, here). In this process every request shares one event loop, so an admin
login held every redirect for that long. ``hashlib.pbkdf2_hmac`` releases the GIL, so
the same computation in gevent's thread pool lets the loop go on serving meanwhile (and
uses the other core); the stored hashes are unchanged (same algorithm name, iterations
and format), so existing passwords keep working and nothing needs migrating.
"""

from __future__ import annotations

from typing import Any

import gevent
from django.contrib.auth.hashers import PBKDF2PasswordHasher


class ThreadedPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    def encode(self, password: str, salt: str, iterations: int | None = None) -> str:
        pool: Any = gevent.get_hub().threadpool
        encoded: str = pool.apply(super().encode, (password, salt, iterations))
        return encoded
