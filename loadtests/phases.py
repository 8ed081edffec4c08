"""The Black-Friday plan: four phases, each a linear ramp of users, scaled in time and in peak size.

The reference run: 5 min baseline ramping to 10 users, 10 min ramp to the peak, 15 min at the peak, 1 min
cool-down; 31 minutes at time scale 1.0. With a doorbuster, the first 2 minutes of the peak are its own phase,
`doorbuster`: the peak's shoppers plus a crowd racing for one product on flash sale.
"""

import time
from dataclasses import dataclass

BASELINE = "baseline"
DOORBUSTER = "doorbuster"
PEAK = "peak"
BASELINE_USERS = 10
DOORBUSTER_MINUTES = 2
FULL_PHASES = (
    # name, minutes, users at the end as a share of the peak (None: the baseline's fixed count)
    (BASELINE, 5, None),
    ("ramp", 10, 1.0),
    (PEAK, 15, 1.0),
    ("cool-down", 1, 0.0),
)


@dataclass(frozen=True)
class Phase:
    name: str
    start_s: float
    end_s: float
    users_from: int
    users_to: int

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def users_at(self, elapsed_s: float) -> int:
        """Users wanted `elapsed_s` seconds into the run (a linear ramp across the phase)."""
        if self.duration_s <= 0:
            return self.users_to
        share = min(max((elapsed_s - self.start_s) / self.duration_s, 0.0), 1.0)
        return round(self.users_from + (self.users_to - self.users_from) * share)

    def spawn_rate(self) -> float:
        """Users per second: twice the ramp's slope, so each one-second shape tick reaches its target, and at
        least a tenth of the phase's users, so a phase that starts behind its target catches up quickly."""
        slope = abs(self.users_to - self.users_from) / max(self.duration_s, 1.0)
        return max(1.0, 2 * slope, max(self.users_from, self.users_to) / 10)


def black_friday_phases(*, time_scale: float, peak_users: int, doorbuster: bool = False) -> list[Phase]:
    if time_scale <= 0:
        raise ValueError(f"time scale must be above 0, not {time_scale}")
    if peak_users < 1:
        raise ValueError(f"peak users must be at least 1, not {peak_users}")
    plan = list(FULL_PHASES)
    if doorbuster:
        # The same 31 minutes: the doorbuster opens the peak.
        at = [name for name, _, _ in plan].index(PEAK)
        _, minutes, share = plan[at]
        plan[at : at + 1] = [(DOORBUSTER, DOORBUSTER_MINUTES, share), (PEAK, minutes - DOORBUSTER_MINUTES, share)]
    phases = []
    start = 0.0
    users = 1
    for name, minutes, peak_share in plan:
        target = min(BASELINE_USERS, peak_users) if peak_share is None else round(peak_users * peak_share)
        end = start + minutes * 60 * time_scale
        phases.append(Phase(name=name, start_s=start, end_s=end, users_from=users, users_to=target))
        start, users = end, target
    return phases


def describe(phases: list[Phase]) -> str:
    """One line naming each phase's window, e.g. for locust's report header."""
    return "Black Friday: " + ", ".join(f"{p.name} {p.start_s:.0f}-{p.end_s:.0f} s" for p in phases)


def phase_at(phases: list[Phase], elapsed_s: float) -> Phase | None:
    """The phase running `elapsed_s` seconds into the run; None once the plan is over."""
    for phase in phases:
        if elapsed_s < phase.end_s:
            return phase
    return None


class PhaseTimeline:
    """Which phase is running, and when each one really started (wall clock), for per-phase rates."""

    def __init__(self, names: list[str] | None = None):
        self.names = list(names or [name for name, _, _ in FULL_PHASES])
        self.current = self.names[0]
        self.started_at: dict[str, float] = {}
        self.ended_at: float | None = None

    def enter(self, name: str, at: float | None = None) -> bool:
        """Mark `name` as running from `at`; True when that changed the current phase."""
        if name not in self.names:
            self.names.append(name)
        changed = name != self.current or name not in self.started_at
        self.current = name
        self.started_at.setdefault(name, time.time() if at is None else at)
        return changed

    def finish(self, at: float | None = None) -> None:
        self.ended_at = time.time() if at is None else at

    def durations(self) -> dict[str, float]:
        """Seconds each phase that ran lasted (until the next phase started, or the run ended)."""
        ran = sorted(self.started_at.items(), key=lambda item: item[1])
        end = self.ended_at if self.ended_at is not None else time.time()
        durations = {}
        for index, (name, started) in enumerate(ran):
            finished = ran[index + 1][1] if index + 1 < len(ran) else end
            durations[name] = max(finished - started, 0.0)
        return durations

    def reset(self) -> None:
        self.current = self.names[0]
        self.started_at = {}
        self.ended_at = None
