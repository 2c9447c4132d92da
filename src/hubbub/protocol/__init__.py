"""The wire protocol, version 1: pure data and rules, no I/O.

Everything here is synchronous and deterministic so it can be tested without
an event loop and reused by the server, the client and the benchmarks.
"""

PROTOCOL_VERSION = 1
