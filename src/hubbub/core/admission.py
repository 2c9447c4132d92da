"""Connection limits checked before the WebSocket upgrade (503 for the server, 429 per IP)."""

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum


class Refused(Enum):
    SERVER_FULL = 503
    TOO_MANY_FROM_IP = 429


@dataclass(slots=True)
class Admission:
    max_connections: int
    max_per_ip: int
    total: int = 0
    per_ip: Counter[str] = field(default_factory=Counter)

    def admit(self, ip: str) -> Refused | None:
        """Take a place for a connection from `ip`, or say why there is none."""
        if self.total >= self.max_connections:
            return Refused.SERVER_FULL
        if self.per_ip[ip] >= self.max_per_ip:
            return Refused.TOO_MANY_FROM_IP
        self.total += 1
        self.per_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self.total -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]
