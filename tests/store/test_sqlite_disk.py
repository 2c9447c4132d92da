"""The SQLite store on a real small filesystem that fills up."""

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hubbub.store.base import StoreUnavailable
from hubbub.store.sqlite import SqliteStore

T0 = 1_795_674_063_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of our own (needs root, as on CI; skipped elsewhere)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs on CI: {result.stderr!r}")
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def write_zeros_forever(filler: Path) -> None:
    with filler.open("wb") as handle:
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()


def fill_up(filler: Path) -> None:
    """Write zeros until the filesystem says it is full."""
    with pytest.raises(OSError, match="No space left on device"):
        write_zeros_forever(filler)


@pytest.fixture
async def store(small_disk: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(small_disk / "hubbub.db")
    await store.open()
    yield store
    await store.close()


async def test_full_disk_is_unavailable_then_recovers(store: SqliteStore, small_disk: Path) -> None:
    kept = (await store.append("r", "ann", "kept", T0)).message.id
    filler = small_disk / "filler"
    fill_up(filler)
    big = "x" * 4000
    refused = 0
    for n in range(1000):
        try:
            await store.append("r", "ann", f"{big}{n}", T0 + n)
        except StoreUnavailable:
            refused += 1
            break
    assert refused == 1
    assert not await store.healthy()
    filler.unlink()
    assert await store.healthy()
    history = (await store.history("r", None, 1000)).messages
    after = (await store.append("r", "ann", "after", T0 + 5000)).message
    assert after.id == history[-1].id + 1
    assert history[0].id == kept


async def test_a_full_disk_is_unhealthy_before_any_message_fails(
    store: SqliteStore, small_disk: Path
) -> None:
    assert await store.healthy()
    fill_up(small_disk / "filler")
    big = "y" * 4000
    for n in range(200):
        if not await store.healthy():
            break
        await store.append("r", "ann", f"{big}{n}", T0 + n)
    assert not await store.healthy()
