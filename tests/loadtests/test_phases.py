import pytest

from loadtests.phases import PhaseTimeline, black_friday_phases, describe, phase_at


def test_black_friday_phases_full_scale_is_the_31_minute_reference():
    phases = black_friday_phases(time_scale=1.0, peak_users=500)

    assert [(p.name, p.duration_s, p.users_from, p.users_to) for p in phases] == [
        ("baseline", 300, 1, 10),
        ("ramp", 600, 10, 500),
        ("peak", 900, 500, 500),
        ("cool-down", 60, 500, 0),
    ]
    assert phases[-1].end_s == 31 * 60


def test_black_friday_phases_time_scale_shrinks_every_phase():
    phases = black_friday_phases(time_scale=0.05, peak_users=500)

    assert phases[-1].end_s == pytest.approx(93)
    assert [p.duration_s for p in phases] == pytest.approx([15, 30, 45, 3])


def test_black_friday_phases_peak_below_ten_caps_the_baseline():
    phases = black_friday_phases(time_scale=1.0, peak_users=4)

    assert [(p.users_from, p.users_to) for p in phases] == [(1, 4), (4, 4), (4, 4), (4, 0)]


@pytest.mark.parametrize(("time_scale", "peak_users"), [(0, 500), (-1, 500), (1.0, 0)])
def test_black_friday_phases_bad_arguments_are_refused(time_scale, peak_users):
    with pytest.raises(ValueError):
        black_friday_phases(time_scale=time_scale, peak_users=peak_users)


def test_phase_users_at_ramps_linearly_within_the_phase():
    ramp = black_friday_phases(time_scale=1.0, peak_users=510)[1]

    assert ramp.users_at(ramp.start_s) == 10
    assert ramp.users_at(ramp.start_s + ramp.duration_s / 2) == 260
    assert ramp.users_at(ramp.end_s) == 510


def test_phase_spawn_rate_keeps_pace_with_the_ramp():
    baseline, ramp, peak, cool_down = black_friday_phases(time_scale=0.1, peak_users=500)

    assert ramp.spawn_rate() >= (500 - 10) / ramp.duration_s
    assert cool_down.spawn_rate() >= 500 / cool_down.duration_s
    assert peak.spawn_rate() == 50
    assert baseline.spawn_rate() == 1


def test_phase_at_names_the_running_phase_and_none_after_the_end():
    phases = black_friday_phases(time_scale=0.1, peak_users=500)

    assert [phase_at(phases, t).name for t in (0, 29.9, 30, 179, 185)] == [
        "baseline",
        "baseline",
        "ramp",
        "peak",
        "cool-down",
    ]
    assert phase_at(phases, 186) is None


def test_phase_timeline_durations_run_until_the_next_phase_or_the_end():
    timeline = PhaseTimeline(["baseline", "ramp", "peak"])

    assert timeline.enter("baseline", at=100.0) is True
    assert timeline.enter("baseline", at=101.0) is False
    timeline.enter("ramp", at=110.0)
    timeline.finish(at=125.0)

    assert timeline.current == "ramp"
    assert timeline.durations() == {"baseline": 10.0, "ramp": 15.0}


def test_describe_names_each_phase_window():
    phases = black_friday_phases(time_scale=0.1, peak_users=500)

    assert describe(phases) == "Black Friday: baseline 0-30 s, ramp 30-90 s, peak 90-180 s, cool-down 180-186 s"


def test_black_friday_phases_with_a_doorbuster_open_the_peak_with_it_in_the_same_31_minutes():
    phases = black_friday_phases(time_scale=1.0, peak_users=500, doorbuster=True)

    assert [(p.name, p.duration_s, p.users_from, p.users_to) for p in phases] == [
        ("baseline", 300, 1, 10),
        ("ramp", 600, 10, 500),
        ("doorbuster", 120, 500, 500),
        ("peak", 780, 500, 500),
        ("cool-down", 60, 500, 0),
    ]
    assert phases[-1].end_s == 31 * 60
