"""Single-use, short-lived registry challenges (issue 24): every server nonce handed out by
a registration's or a key update's init is stored, and a commit takes it in its own
transaction, once, for the purpose and the client nonce it was issued for, within
``DIRECTOR_REGISTRY_CHALLENGE_SECONDS``. Pelican's clients only echo the fields, so they
do not see the difference; a replayed commit (a captured key update sent again with an
attacker's key added) finds its nonce taken.

Issuing is bounded: 64-hex client nonces only (400 otherwise), a budget per client address
(``DIRECTOR_REGISTRY_CHALLENGES_PER_MINUTE``, per process) and at most
``MAX_OUTSTANDING`` unused challenges at once (429 beyond either). Lapsed rows are deleted
when new ones are issued.

``clock`` is the one source of "now" here: tests move it instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone

from director.federation import issuer
from director.models import ChallengePurpose, RegistryChallenge
from director.trust import registry as protocol
from director.wire.errors import Refusal

MAX_OUTSTANDING = 10_000
BAD_NONCE = (
    "Bad request for key-sign challenge: client_nonce must be 64 hex characters "
    "(32 random bytes, hex-encoded)"
)
TOO_MANY = (
    "Too many registry challenges were asked for; retry in a minute (each challenge is "
    "good for one commit)"
)
UNKNOWN = (
    "the challenge is unknown, already used or expired: start again with a new challenge "
    "init (each server nonce is good for one commit, within {seconds:g} seconds)"
)

clock: Callable[[], dt.datetime] = timezone.now
_budget: protocol.ChallengeBudget | None = None


def budget() -> protocol.ChallengeBudget:
    """This process's budget per client address (made on first use, from the setting)."""
    global _budget
    per_minute = settings.DIRECTOR_REGISTRY_CHALLENGES_PER_MINUTE
    if _budget is None or _budget.per_minute != per_minute:
        _budget = protocol.ChallengeBudget(per_minute)
    return _budget


def lifetime() -> dt.timedelta:
    return dt.timedelta(seconds=settings.DIRECTOR_REGISTRY_CHALLENGE_SECONDS)


def issue(client_nonce: str, purpose: ChallengePurpose, client_address: str) -> dict[str, Any]:
    """A challenge init's answer (server nonce, payload, the registry's signature), its
    server nonce stored; Refusal 400 for a client nonce Pelican would not send, 429 past
    the budget of the address or the cap of unused challenges."""
    if not protocol.is_nonce(client_nonce):
        raise Refusal(400, BAD_NONCE)
    if not budget().take(client_address):
        raise Refusal(429, TOO_MANY)
    now = clock()
    RegistryChallenge.objects.filter(issued_at__lt=now - lifetime()).delete()
    if RegistryChallenge.objects.count() >= MAX_OUTSTANDING:
        raise Refusal(429, TOO_MANY)
    answer = protocol.challenge(issuer.signer().key, client_nonce)
    RegistryChallenge.objects.create(
        server_nonce=answer.server_nonce,
        client_nonce=client_nonce,
        purpose=purpose,
        issued_at=now,
    )
    return answer.as_json()


def take(body: dict[str, Any], purpose: ChallengePurpose, refused: str) -> None:
    """Take the commit's challenge, in the caller's transaction: Refusal 403 (``refused``
    and why) when its server nonce is unknown, used, of another purpose or client nonce,
    or older than the lifetime. One ``DELETE``: of two commits racing with one nonce,
    one deletes the row and the other finds none (lapsed rows go at the next issue)."""
    taken, _ = RegistryChallenge.objects.filter(
        server_nonce=str(body.get("server_nonce", "")),
        client_nonce=str(body.get("client_nonce", "")),
        purpose=purpose,
        issued_at__gte=clock() - lifetime(),
    ).delete()
    if not taken:
        seconds = lifetime().total_seconds()
        raise Refusal(403, refused + UNKNOWN.format(seconds=seconds))
