"""Django ``choices`` for Pelican's enums (``director.wire.types``): the value list of a
kind or status is written once, in the wire enum, and the models' fields take it from
there (one enum per concept, no mirror ``TextChoices``)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping


def wire_choices(
    members: Iterable[enum.StrEnum], labels: Mapping[enum.StrEnum, str] | None = None
) -> list[tuple[str, str]]:
    """Each member's value (``members`` is the enum, or its members in the order the
    admin lists them), labelled as the admin shows it: ``labels[member]``, else
    its member's name in lower case (``SHUTTING_DOWN``: "shutting down").

    The labels and their order are in the migrations: changing them is a schema change."""
    labels = labels or {}
    return [
        (member.value, labels.get(member, member.name.lower().replace("_", " ")))
        for member in members
    ]
