from hubbub.core.hub import Hub


def test_join_and_leave_report_whether_anything_changed() -> None:
    hub: Hub[str] = Hub()
    assert hub.join("r", "c1") is True
    assert hub.join("r", "c1") is False
    assert hub.join("r", "c2") is True
    assert list(hub.members("r")) == ["c1", "c2"]
    assert hub.leave("r", "c1") is True
    assert hub.leave("r", "c1") is False
    assert list(hub.members("r")) == ["c2"]


def test_an_emptied_room_is_forgotten() -> None:
    hub: Hub[str] = Hub()
    hub.join("r", "c1")
    hub.join("s", "c1")
    assert hub.room_count() == 2
    hub.leave("r", "c1")
    assert not hub.has("r")
    assert list(hub.members("r")) == []
    assert list(hub.rooms()) == ["s"]
    assert hub.leave("never", "c1") is False


def test_size_counts_each_room_a_member_is_in() -> None:
    hub: Hub[str] = Hub()
    assert hub.size() == 0
    hub.join("r", "c1")
    hub.join("s", "c1")
    hub.join("s", "c2")
    assert hub.size() == 3
    hub.leave("s", "c1")
    assert hub.size() == 2
