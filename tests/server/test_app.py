"""The composition root builds what the settings ask for."""

from pathlib import Path

import pytest

from hubbub.config import Settings
from hubbub.server.app import build_store
from hubbub.store.memory import MemoryStore
from hubbub.store.postgres import PostgresStore
from hubbub.store.sqlite import SqliteStore


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_the_sqlite_store_gets_the_settings_durability_and_pacing(
    tmp_path: Path, synchronous: str
) -> None:
    settings = Settings(
        data_dir=str(tmp_path), sqlite_synchronous=synchronous, sqlite_commit_delay=0.01
    )
    store = build_store(settings)
    assert isinstance(store, SqliteStore)
    assert store.path == tmp_path / "hubbub.db"
    assert store.synchronous == synchronous.upper()
    assert store.commit_delay == 0.01


def test_the_memory_store_is_built_when_asked_for() -> None:
    assert isinstance(build_store(Settings(store="memory")), MemoryStore)


def test_a_postgresql_url_builds_the_postgresql_store_on_it() -> None:
    url = "postgresql://hubbub@127.0.0.1:5432/chat"
    store = build_store(Settings(store=url))
    assert isinstance(store, PostgresStore)
    assert store.dsn == url
