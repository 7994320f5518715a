"""The admin's password hasher computes PBKDF2 off the event loop, in Django's format."""

from __future__ import annotations

import gevent
from django.contrib.auth.hashers import PBKDF2PasswordHasher, check_password, make_password

from director.hashers import ThreadedPBKDF2PasswordHasher

ROUNDS = 300_000  # ~75 ms here: long enough for the loop to turn many times meanwhile


def ticks_while(encode: object) -> int:
    """How often a 5 ms ticker ran while ``encode()`` computed a hash."""
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        while True:
            gevent.sleep(0.005)
            ticks += 1

    ticker = gevent.spawn(tick)
    gevent.sleep(0.01)  # the ticker is running
    before = ticks
    encode()  # type: ignore[operator]
    counted = ticks - before
    ticker.kill()
    return counted


def test_the_event_loop_goes_on_while_a_password_is_hashed():
    threaded, plain = ThreadedPBKDF2PasswordHasher(), PBKDF2PasswordHasher()

    assert ticks_while(lambda: plain.encode("secret", "salt1234", ROUNDS)) == 0
    assert ticks_while(lambda: threaded.encode("secret", "salt1234", ROUNDS)) >= 2


def test_the_stored_format_is_djangos_own(settings):
    settings.PASSWORD_HASHERS = [
        "director.hashers.ThreadedPBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    threaded, plain = ThreadedPBKDF2PasswordHasher(), PBKDF2PasswordHasher()

    assert threaded.encode("secret", "salt1234", 1000) == plain.encode("secret", "salt1234", 1000)
    assert check_password("secret", make_password("secret"))
    assert not check_password("wrong", make_password("secret"))
