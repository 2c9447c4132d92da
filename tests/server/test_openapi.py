"""The OpenAPI document against the running server: schemathesis sends what the document
allows (and what it does not) to `hubbub serve` in a process of its own; every answer must
be documented, match its schema, and none may be a 500."""

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import negative_data_rejection

from hubbub.protocol.validation import MAX_CONTENT, MAX_USERNAME
from hubbub.server.openapi import TEXT_FORMAT, USERNAME_FORMAT, document
from tests.conftest import HUBBUB, free_port

API_KEY = "openapi-test-key"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [*HUBBUB, "serve", "--port", str(port), "--store", "memory", "--api-key", API_KEY],
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if b"listening on" in line:
                break
        else:
            raise RuntimeError("hubbub serve exited before listening")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=10)
        process.stderr.close()


_PRINTABLE = st.characters(codec="utf-8", exclude_categories=["C", "Z"])
"""What `str.isprintable()` accepts, but the space (added where allowed)."""
schemathesis.openapi.format(
    USERNAME_FORMAT,
    st.text(_PRINTABLE | st.just(" "), min_size=1, max_size=MAX_USERNAME).filter(str.strip),
)
schemathesis.openapi.format(
    TEXT_FORMAT,
    st.text(_PRINTABLE | st.sampled_from(" \t\n"), min_size=1, max_size=MAX_CONTENT).filter(
        str.strip
    ),
)

schema = schemathesis.openapi.from_dict(document())
"""The document as built; the test below shows the server serves exactly this one."""


@schema.exclude(path="/ws").parametrize()
@settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
def test_every_answer_matches_the_document(case: Any, base_url: str) -> None:
    # The key as a caller passes it: schemathesis then also sends the request without it
    # and with a wrong one, and expects those refused.
    if case.method != "POST":
        case.call_and_validate(base_url=base_url, timeout=10)
        return
    # The formats of `from` and `content` are rules JSON Schema cannot state, so schemathesis
    # cannot make a value that breaks them: it would take any string for one. Each refusal
    # of a publish has a test of its own (test_publish.py); here its answers must match.
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        excluded_checks=[negative_data_rejection],
        timeout=10,
    )


def test_the_served_document_is_the_one_built_from_the_validators(base_url: str) -> None:
    served = requests.get(f"{base_url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == document()
    assert served.json()["openapi"].startswith("3.1")


def test_every_route_of_the_server_is_documented(base_url: str) -> None:
    from hubbub.config import Settings
    from hubbub.server.app import build_app

    app = build_app(Settings(store="memory"))
    served = {
        resource.canonical
        for resource in app.router.resources()
        if not resource.canonical.startswith("/static")
    }
    assert served <= set(document()["paths"])
