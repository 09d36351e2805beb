"""SeqTracker: what `edgernn listen` reports — duplicates dropped, gaps found, bounded memory."""

from __future__ import annotations

from edge_runtime.publish.tracker import SeqTracker


def test_duplicates_and_gaps():
    t = SeqTracker()
    got = [t.add("dev1", s) for s in (1, 2, 2, 5, 3, 7, 5)]
    assert got == [True, True, False, True, True, True, False]
    r = t.report()["dev1"]
    assert r["unique"] == 5 and r["duplicates"] == 2
    assert r["gaps"] == [[4, 4], [6, 6]] and r["missing"] == 2 and (r["first"], r["last"]) == (1, 7)


def test_devices_are_counted_separately():
    t = SeqTracker()
    for s in range(1, 4):
        t.add("a", s)
        t.add("b", s + 10)
    rep = t.report()
    assert rep["a"]["missing"] == 0 and rep["b"]["first"] == 11 and t.unique == 6


def test_out_of_order_before_the_first_seen():
    t = SeqTracker()
    for s in (5, 6, 3):
        t.add("d", s)
    assert t.report()["d"]["gaps"] == [[4, 4]]
    t.add("d", 4)
    assert t.report()["d"]["missing"] == 0


def test_given_up_gaps_are_filled_by_late_arrivals_and_memory_stays_bounded():
    t = SeqTracker(reorder_window=100)
    for s in range(1, 1001):
        if s != 10:
            t.add("d", s)
    r = t.report()["d"]
    assert r["gaps"] == [[10, 10]] and len(t._streams["d"].above) == 0
    assert t.add("d", 10) is True and t.add("d", 10) is False
    r = t.report()["d"]
    assert r["missing"] == 0 and r["late"] == 1 and r["duplicates"] == 1


def test_a_run_in_order_and_a_run_with_holes_count_the_same_as_one_by_one():
    one, many = SeqTracker(), SeqTracker()
    runs = [[1, 2, 3], [4, 5, 6, 7], [9, 10], [8], [8, 11], [12, 13]]
    for run in runs:
        for s in run:
            one.add("d", s, second=0)
        many.add_many("d", run, second=0)
    assert many.report() == one.report()
    assert many.report()["d"] == {
        "unique": 13,
        "duplicates": 1,
        "missing": 0,
        "gaps": [],
        "first": 1,
        "last": 13,
        "late": 0,
    }
    assert many.received == one.received == 14 and many.per_second == [14]


def test_seqs_per_device_deliveries_per_second_and_the_saved_file(tmp_path):
    from firmware_sim.subscriber import Delivered

    t = SeqTracker()
    t.add_many("a", [1, 2, 3], second=0)
    t.add_many("a", [5, 5], second=2)
    t.add("b", 7, second=2)
    assert {d: s.tolist() for d, s in t.seqs().items()} == {"a": [1, 2, 3, 5], "b": [7]}
    assert t.duplicates_by_device() == {"a": 1, "b": 0} and t.per_second == [3, 0, 3] and t.unique == 5
    t.save(tmp_path / "d.npz")
    back = Delivered.load(tmp_path / "d.npz", started=0.0)
    assert {d: s.tolist() for d, s in back.seqs.items()} == {"a": [1, 2, 3, 5], "b": [7]}
    assert back.duplicates == {"a": 1, "b": 0} and back.per_second.tolist() == [3, 0, 3]
