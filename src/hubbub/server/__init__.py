"""The asyncio shell around the pure core: sockets, HTTP routes, timers, metrics."""
