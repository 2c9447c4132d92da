"""Reading the collector's pauses out of /metrics (bench/gc_arrivals.py)."""

from bench.gc_arrivals import longest_bound, pauses

BOUNDS = ("0.01", "0.025", "0.05", "+Inf")


def exposition(*generations: tuple[int, tuple[int, ...], float]) -> str:
    """/metrics text for (generation, cumulative count per bound in BOUNDS, seconds)."""
    lines = [
        "# HELP hubbub_gc_pause_seconds Garbage-collector pauses, by generation collected",
        "# TYPE hubbub_gc_pause_seconds histogram",
    ]
    for generation, counts, total in generations:
        labels = f'generation="{generation}"'
        lines += [
            f'hubbub_gc_pause_seconds_bucket{{{labels},le="{bound}"}} {count}.0'
            for bound, count in zip(BOUNDS, counts, strict=True)
        ]
        lines.append(f"hubbub_gc_pause_seconds_count{{{labels}}} {counts[-1]}.0")
        lines.append(f"hubbub_gc_pause_seconds_sum{{{labels}}} {total}")
    lines.append("hubbub_gc_frozen_objects 51234.0")
    return "\n".join(lines) + "\n"


BEFORE = exposition((0, (3, 3, 3, 3), 0.006), (2, (0, 0, 1, 1), 0.031))
AFTER = exposition((0, (3, 4, 5, 5), 0.066), (2, (0, 0, 1, 1), 0.031))


def test_each_generation_gets_its_count_sum_and_buckets() -> None:
    read = pauses(BEFORE)
    assert sorted(read) == [0, 2]
    assert read[2] == (1, 0.031, {"0.01": 0, "0.025": 0, "0.05": 1, "+Inf": 1})


def test_the_longest_pause_is_bounded_by_the_bucket_that_holds_them_all() -> None:
    before, after = pauses(BEFORE)[0], pauses(AFTER)[0]
    assert after[0] - before[0] == 2
    # Of the two new collections, one fits in 25 ms and the other only in 50 ms.
    assert longest_bound(before[2], after[2]) == "0.05"


def test_a_pause_beyond_every_bound_is_unbounded() -> None:
    before = pauses(BEFORE)[2][2]
    after = pauses(exposition((2, (0, 0, 1, 2), 0.531)))[2][2]
    assert longest_bound(before, after) == "+Inf"
