import pytest

from hubbub.core.origins import OriginPolicy


def test_no_origin_is_not_a_browser_and_is_allowed() -> None:
    assert OriginPolicy().permits(None, "chat.example.com")


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "http://[::1]:3000",
        "https://chat.example.com",
    ],
)
def test_default_allows_own_host_and_localhost(origin: str) -> None:
    assert OriginPolicy().permits(origin, "chat.example.com")


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://localhost.evil.example"]
)
def test_default_refuses_other_sites(origin: str) -> None:
    assert not OriginPolicy().permits(origin, "chat.example.com")


def test_configured_list_replaces_localhost_but_keeps_own_host() -> None:
    policy = OriginPolicy(("https://app.example.com", "*.example.org"))
    assert policy.permits("https://app.example.com", "chat.example.com")
    assert policy.permits("https://chat.example.com", "chat.example.com")
    assert policy.permits("https://a.b.example.org", "chat.example.com")
    assert not policy.permits("https://example.org", "chat.example.com")
    assert not policy.permits("https://evilexample.org", "chat.example.com")
    assert not policy.permits("http://localhost:3000", "chat.example.com")
    assert not policy.permits("http://app.example.com", "chat.example.com")


def test_pattern_with_scheme_checks_the_scheme() -> None:
    policy = OriginPolicy(("https://*.example.com",))
    assert policy.permits("https://a.example.com", None)
    assert not policy.permits("http://a.example.com", None)


def test_star_allows_any_origin() -> None:
    assert OriginPolicy(("*",)).permits("https://anything.test", None)
    assert OriginPolicy(("*",)).permits("null", None)
