"""Where and how the server logs: one line per event on stderr."""

import logging
import sys


def configure(level: str, worker: int | None = None) -> None:
    """Log at `level` to stderr; a worker of `--workers` marks its lines with its
    number and process id, since the workers share the parent's stderr."""
    tag = "" if worker is None else f"worker-{worker}[%(process)d] "
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level != "debug":
        # websockets' "connection open" and "connection closed" would repeat Hubbub's
        # own line for each; at debug its log is the point: every frame.
        logging.getLogger("hubbub.frames").setLevel(logging.WARNING)
