"""The stat engine: object-presence checks that cannot pile up. Plain Python + gevent."""

from director.stat.engine import StatEngine
from director.stat.outcomes import Outcome, StatResult
from director.stat.types import PoolState, StatConfig, StatTarget, cache_key

__all__ = [
    "Outcome",
    "PoolState",
    "StatConfig",
    "StatEngine",
    "StatResult",
    "StatTarget",
    "cache_key",
]
