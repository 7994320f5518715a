"""Refusals counted per client address (DIRECTOR_REFUSED_ADS_PER_MINUTE): an address
whose advertisements or federation-token requests were refused too often in a minute is
answered 429 with Retry-After until that minute ends, before anything else is done for
it (issue 24: no anonymous CPU amplification, and, against an external registry, no
anonymous registry requests without bound)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from director.remote.registry import KeysNotRefreshedYet
from director.trust.refusals import RefusalCounter
from director.wire.errors import ApprovalRefusal, Refusal

refused_ads = RefusalCounter()


def sender_caused(refused: Refusal) -> bool:
    """Whether a refusal counts against its sender: not an approval wait (a key holder
    waiting for an administrator), not a 503 of a registry that could not be asked; but a
    key missing from a set fetched a moment ago (forged kids) does."""
    if isinstance(refused, ApprovalRefusal):
        return False
    return refused.status != 503 or isinstance(refused, KeysNotRefreshedYet)


@contextmanager
def counted(address: str, what: str = "advertisements") -> Iterator[None]:
    """429 at once while ``address`` is over the limit; else run the block and count a
    refusal it raises (``sender_caused``)."""
    wait = refused_ads.retry_after(address, settings.DIRECTOR_REFUSED_ADS_PER_MINUTE)
    if wait:
        raise Refusal(
            429,
            f"Too many refused {what} from {address}; retry in {wait} s",
            header_lines=(("Retry-After", str(wait)),),
        )
    try:
        yield
    except Refusal as refused:
        if sender_caused(refused):
            refused_ads.note(address)
        raise
