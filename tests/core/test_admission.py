from hubbub.core.admission import Admission, Refused


def test_server_limit_then_per_ip_limit() -> None:
    admission = Admission(max_connections=3, max_per_ip=2)
    assert admission.admit("1.1.1.1") is None
    assert admission.admit("1.1.1.1") is None
    assert admission.admit("1.1.1.1") is Refused.TOO_MANY_FROM_IP
    assert admission.admit("2.2.2.2") is None
    assert admission.admit("3.3.3.3") is Refused.SERVER_FULL
    admission.release("1.1.1.1")
    assert admission.admit("3.3.3.3") is None
    assert admission.total == 3


def test_release_forgets_idle_addresses() -> None:
    admission = Admission(max_connections=10, max_per_ip=1)
    admission.admit("1.1.1.1")
    admission.release("1.1.1.1")
    assert admission.per_ip == {}
    assert admission.total == 0
