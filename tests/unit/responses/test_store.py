"""The bounded response store: size, TTL, size 0."""

from __future__ import annotations

from service.responses.store import ResponseStore


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _put(store: ResponseStore, response_id: str) -> None:
    store.put(response_id, [{"role": "user", "content": response_id}], {"id": response_id})


def test_get_returns_what_was_put() -> None:
    store = ResponseStore(size=4, ttl_s=10)
    _put(store, "resp_a")
    stored = store.get("resp_a")
    assert stored is not None and stored.response == {"id": "resp_a"}
    assert stored.conversation == ({"role": "user", "content": "resp_a"},)
    assert store.get("resp_b") is None


def test_oldest_entries_go_beyond_size() -> None:
    store = ResponseStore(size=2, ttl_s=10)
    for name in ("resp_a", "resp_b", "resp_c"):
        _put(store, name)
    assert store.get("resp_a") is None
    assert store.get("resp_b") is not None and store.get("resp_c") is not None
    assert len(store) == 2


def test_entries_expire_after_ttl() -> None:
    clock = Clock()
    store = ResponseStore(size=10, ttl_s=5, clock=clock)
    _put(store, "resp_a")
    clock.now += 3
    _put(store, "resp_b")
    clock.now += 2.5
    assert store.get("resp_a") is None and store.get("resp_b") is not None
    clock.now += 3
    assert store.get("resp_b") is None and len(store) == 0


def test_size_zero_keeps_nothing() -> None:
    store = ResponseStore(size=0, ttl_s=10)
    _put(store, "resp_a")
    assert store.get("resp_a") is None and len(store) == 0
