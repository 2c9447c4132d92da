import pytest

from hubbub.core.autocork import HORIZON, LOADED, QUIET, SHORTEST, Autocork

LONGEST = 0.025


def steady(cork: Autocork, share: float, start: float, seconds: float, period: float) -> float:
    """Write passes of `share * period` every `period` from `start` for `seconds`; the
    clock when the last one ended."""
    now = start
    for _ in range(round(seconds / period)):
        pass_started = now + period * (1 - share)
        now += period
        cork.wrote(pass_started, now)
    return now


def test_a_loop_that_has_written_nothing_is_quiet() -> None:
    cork = Autocork(LONGEST)
    assert cork.load(100.0) == 0.0
    assert cork.window(100.0) == 0.0


@pytest.mark.parametrize("share", [0.05, 0.2, 0.4, 0.7, 0.95])
@pytest.mark.parametrize("period", [0.002, 0.02, 0.1])
def test_a_steady_share_of_time_spent_writing_reads_as_that_share(
    share: float, period: float
) -> None:
    cork = Autocork(LONGEST)
    now = steady(cork, share, 0.0, 10 * HORIZON, period)
    # Read halfway to the next pass: the average over a pass's period.
    assert cork.load(now + period / 2) == pytest.approx(share, rel=0.15)


def test_below_quiet_every_frame_leaves_at_the_end_of_its_turn() -> None:
    cork = Autocork(LONGEST)
    now = steady(cork, QUIET * 0.8, 0.0, 10 * HORIZON, 0.02)
    assert cork.window(now) == 0.0


def test_at_and_above_loaded_frames_wait_the_longest_window() -> None:
    cork = Autocork(LONGEST)
    now = steady(cork, min(1.0, LOADED * 1.2), 0.0, 10 * HORIZON, 0.02)
    assert cork.window(now) == LONGEST


def test_between_quiet_and_loaded_the_window_grows_with_the_load() -> None:
    windows = []
    for share in (0.25, 0.3, 0.35, 0.4, 0.45):
        assert QUIET < share < LOADED
        cork = Autocork(LONGEST)
        now = steady(cork, share, 0.0, 10 * HORIZON, 0.001)
        windows.append(cork.window(now))
    assert windows == sorted(windows)
    assert 0 < windows[0] < windows[-1] < LONGEST
    # Short while the loop has time to spare: a quarter of the longest halfway.
    middle = Autocork(LONGEST)
    now = steady(middle, (QUIET + LOADED) / 2, 0.0, 10 * HORIZON, 0.001)
    assert middle.window(now) == pytest.approx(LONGEST / 4, rel=0.15)


def test_a_window_too_short_for_a_timer_is_none() -> None:
    cork = Autocork(LONGEST)
    share = QUIET + (LOADED - QUIET) * (SHORTEST / LONGEST) ** 0.5 / 2
    now = steady(cork, share, 0.0, 10 * HORIZON, 0.001)
    assert QUIET < cork.load(now) < LOADED
    assert cork.window(now) == 0.0


def test_a_loop_that_runs_out_of_work_is_quiet_again_within_a_few_horizons() -> None:
    cork = Autocork(LONGEST)
    now = steady(cork, 0.9, 0.0, 10 * HORIZON, 0.02)
    assert cork.window(now) == LONGEST
    # A quiet write (a single frame) now and then does not keep it loaded.
    later = steady(cork, 0.001, now, 3 * HORIZON, 0.1)
    assert cork.window(later) == 0.0
    assert cork.load(later) < QUIET / 2


def test_one_long_pass_does_not_make_the_loop_loaded_for_long() -> None:
    """A single large fan-out (a join storm's list to every member) opens windows for a
    moment, not for good."""
    cork = Autocork(LONGEST)
    cork.wrote(10.0, 10.0 + HORIZON)
    assert cork.window(10.0 + HORIZON) == LONGEST
    assert cork.window(10.0 + 2 * HORIZON) > 0
    assert cork.window(10.0 + 3 * HORIZON) == 0.0


def test_without_a_longest_window_nothing_ever_waits() -> None:
    cork = Autocork(0.0)
    now = steady(cork, 1.0, 0.0, 10 * HORIZON, 0.02)
    assert cork.window(now) == 0.0


def test_a_clock_that_steps_back_changes_nothing() -> None:
    cork = Autocork(LONGEST)
    now = steady(cork, 0.9, 0.0, 10 * HORIZON, 0.02)
    load = cork.load(now)
    assert cork.load(now - 1.0) == load


@pytest.mark.parametrize(
    ("quiet", "loaded", "horizon"), [(-0.1, 0.5, 0.25), (0.5, 0.5, 0.25), (0.2, 0.5, 0.0)]
)
def test_thresholds_out_of_order_are_refused(quiet: float, loaded: float, horizon: float) -> None:
    with pytest.raises(ValueError, match="must"):
        Autocork(LONGEST, horizon=horizon, quiet=quiet, loaded=loaded)
