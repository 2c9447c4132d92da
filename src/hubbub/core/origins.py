"""Which browser origins may open a WebSocket (against cross-site WebSocket hijacking).

Browsers send `Origin` on every WebSocket upgrade and let any page open one to
any host, with the user's cookies. So an upgrade whose Origin is not allowed is
refused. A request without `Origin` is not a browser and is not refused for it.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    allowed: tuple[str, ...] = ()
    """Exact origins (`https://chat.example.com`), host patterns (`*.example.com`,
    `https://*.example.com`) or `*` for any. Empty: the server's own host and localhost."""

    def permits(self, origin: str | None, own_host: str | None) -> bool:
        if origin is None or "*" in self.allowed:
            return True
        parts = urlsplit(origin)
        hostname = parts.hostname
        if hostname is None:
            return False
        if own_host is not None and parts.netloc.lower() == own_host.lower():
            return True
        if not self.allowed:
            return hostname in LOCAL_HOSTS
        return any(_matches(rule, origin.lower(), parts.scheme, hostname) for rule in self.allowed)


def _matches(rule: str, origin: str, scheme: str, hostname: str) -> bool:
    rule = rule.lower().rstrip("/")
    if "*." not in rule:
        return rule == origin
    rule_scheme, _, pattern = rule.rpartition("://")
    if rule_scheme and rule_scheme != scheme:
        return False
    suffix = pattern.removeprefix("*")
    return hostname.endswith(suffix) and len(hostname) > len(suffix)
