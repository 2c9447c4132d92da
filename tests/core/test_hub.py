from hubbub.core.hub import Change, Hub


def test_presence_is_per_username() -> None:
    hub: Hub[str] = Hub()
    assert hub.join("r", "tab1", "ann") == Change(True, True, "ann")
    assert hub.join("r", "tab2", "ann") == Change(True, False, "ann")
    assert hub.join("r", "c3", "bob") == Change(True, True, "bob")
    room = hub.room("r")
    assert room is not None
    assert room.usernames() == ["ann", "bob"]
    assert set(hub.members("r")) == {"tab1", "tab2", "c3"}
    assert hub.leave("r", "tab1") == Change(True, False, "ann")
    assert hub.leave("r", "tab2") == Change(True, True, "ann")
    assert room.usernames() == ["bob"]


def test_joining_twice_changes_nothing() -> None:
    hub: Hub[str] = Hub()
    hub.join("r", "c", "ann")
    assert hub.join("r", "c", "ann") == Change(False, False, "ann")
    room = hub.room("r")
    assert room is not None
    assert room.user_connections == {"ann": 1}


def test_leaving_a_room_not_joined_changes_nothing() -> None:
    hub: Hub[str] = Hub()
    assert not hub.leave("nowhere", "c").member_changed
    hub.join("r", "a", "ann")
    assert not hub.leave("r", "b").member_changed


def test_empty_rooms_disappear() -> None:
    hub: Hub[str] = Hub()
    hub.join("r", "a", "ann")
    hub.join("s", "a", "ann")
    hub.join("s", "b", "bob")
    assert hub.room_count() == 2
    assert hub.distinct_users() == 2
    hub.leave("r", "a")
    assert hub.room("r") is None
    assert list(hub.members("r")) == []
    assert [room.name for room in hub.rooms()] == ["s"]


def test_usernames_are_sorted() -> None:
    hub: Hub[int] = Hub()
    for member, name in enumerate(["zed", "amy", "Bob", "mia"]):
        hub.join("r", member, name)
    room = hub.room("r")
    assert room is not None
    assert room.usernames() == ["Bob", "amy", "mia", "zed"]
