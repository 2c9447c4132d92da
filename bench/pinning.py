"""Which cores the server under test gets and which the load generator gets."""

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CoreSplit:
    server: frozenset[int]
    generator: frozenset[int]

    @property
    def isolated(self) -> bool:
        """True when server and generator do not share a core."""
        return not (self.server & self.generator)


def split_cores(server_cores: int = 0) -> CoreSplit:
    """Give the server the first `server_cores` usable cores (default: half, at least one).

    With a single usable core nothing can be isolated: both get it.
    """
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        everything = frozenset(usable)
        return CoreSplit(everything, everything)
    count = server_cores or max(1, len(usable) // 2)
    count = min(count, len(usable) - 1)
    return CoreSplit(frozenset(usable[:count]), frozenset(usable[count:]))


def pin_current_process(cores: frozenset[int]) -> None:
    os.sched_setaffinity(0, cores)
