"""The stat engine: object-presence checks that cannot pile up. Plain Python + gevent."""

from director.stat.engine import PoolState, StatConfig, StatEngine, StatTarget, cache_key
from director.stat.outcomes import Outcome, StatResult

__all__ = [
    "Outcome",
    "PoolState",
    "StatConfig",
    "StatEngine",
    "StatResult",
    "StatTarget",
    "cache_key",
]
