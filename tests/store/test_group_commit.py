"""GroupCommit: concurrent submissions are written together, each exactly once."""

from __future__ import annotations

import threading

from tcp_lab.store._group import GroupCommit


def _run_threads(n: int, target) -> list[BaseException | None]:
    errors: list[BaseException | None] = [None] * n
    start = threading.Barrier(n)

    def body(i: int) -> None:
        start.wait()
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - collected for the assertions
            errors[i] = e

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a submitter never returned"
    return errors


def test_concurrent_items_are_each_written_once_and_share_transactions():
    batches: list[list[int]] = []
    lock = threading.Lock()

    def flush(items: list[int]) -> None:
        with lock:
            batches.append(list(items))

    group = GroupCommit(flush, gap=0.005, max_wait=0.05)
    errors = _run_threads(40, group.submit)
    assert errors == [None] * 40
    written = sorted(i for b in batches for i in b)
    assert written == list(range(40))           # every item, exactly once
    assert len(batches) < 40                     # and grouped


def test_a_submitter_returns_only_after_its_batch_was_written():
    written: set[int] = set()
    seen_after_return: list[bool] = []

    def flush(items: list[int]) -> None:
        written.update(items)

    group = GroupCommit(flush, gap=0.001)

    def submit(i: int) -> None:
        group.submit(i)
        seen_after_return.append(i in written)

    _run_threads(20, submit)
    assert seen_after_return == [True] * 20


def test_a_bad_item_fails_its_own_caller_only():
    written: list[int] = []

    def flush(items: list[int]) -> None:
        if 13 in items:
            raise ValueError("item 13 is bad")
        written.extend(items)

    group = GroupCommit(flush, gap=0.005)
    errors = _run_threads(20, group.submit)
    assert isinstance(errors[13], ValueError)
    assert [e for i, e in enumerate(errors) if i != 13] == [None] * 19
    assert sorted(written) == [i for i in range(20) if i != 13]


def test_a_single_caller_is_written_alone_without_waiting_for_max_wait():
    batches: list[list[str]] = []
    group = GroupCommit(batches.append, gap=0.0, max_wait=60.0)
    group.submit("a")
    group.submit("b")
    assert batches == [["a"], ["b"]]
