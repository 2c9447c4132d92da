"""A stock ticker that publishes prices into a Hubbub room over HTTP, once a second.

    hubbub serve --api-key dev-key-0123456789          # in one terminal
    python examples/ticker.py --api-key dev-key-0123456789
    # then open http://127.0.0.1:3000/static/examples/dashboard.html?room=prices

Each message carries the human-readable line in `content` (what the chat page and
seed clients show) and the numbers in `data` (what the dashboard draws). Prices
follow a seeded random walk, so two runs with the same `--seed` publish the same
series. Every publish has a `ref` of its own: a publish retried after a dropped
answer is stored once (see `hubbub.publisher`).
"""

import argparse
import asyncio
import contextlib
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from hubbub.publisher import Publisher, PublishUnavailable

SYMBOLS = {"AAPL": 191.20, "MSFT": 415.50, "NVDA": 121.40, "TSLA": 242.10}


@dataclass
class Quote:
    symbol: str
    price: float
    change: float
    """Percent since the first quote of the run."""

    @property
    def line(self) -> str:
        return f"{self.symbol} {self.price:.2f} ({self.change:+.1f}%)"

    @property
    def data(self) -> dict[str, object]:
        return {"symbol": self.symbol, "price": self.price, "change": self.change}


def quotes(seed: int) -> Iterator[Quote]:
    """An endless random walk over `SYMBOLS`, one symbol after another."""
    rng = random.Random(seed)
    opening = dict(SYMBOLS)
    prices = dict(SYMBOLS)
    while True:
        for symbol in prices:
            prices[symbol] = round(max(0.01, prices[symbol] * (1 + rng.gauss(0, 0.004))), 2)
            change = round((prices[symbol] / opening[symbol] - 1) * 100, 2)
            yield Quote(symbol, prices[symbol], change)


async def run(url: str, api_key: str, room: str, interval: float, count: int, seed: int) -> None:
    async with Publisher(url, api_key) as publisher:
        for sent, quote in enumerate(quotes(seed), start=1):
            try:
                published = await publisher.publish(
                    room, quote.line, sender="ticker", data=quote.data
                )
            except PublishUnavailable as error:
                # The publisher retried for a while already; a ticker goes on with the next.
                print(f"skipped {quote.line}: {error}", file=sys.stderr, flush=True)
            else:
                print(f"#{published.id} {quote.line}", flush=True)
            if count and sent >= count:
                return
            await asyncio.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--room", default="prices")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between quotes")
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.url, args.api_key, args.room, args.interval, args.count, args.seed))


if __name__ == "__main__":
    main()
