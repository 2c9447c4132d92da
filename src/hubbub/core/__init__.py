"""The pure domain: rooms, presence, sessions and limits. No sockets, no asyncio, no clock reads.

Time comes in as a `now` argument (seconds, monotonic) so every rule is testable
without waiting.
"""
