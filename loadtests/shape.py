"""BlackFridayShape: locust's load shape for the plan in loadtests.phases."""

from typing import Protocol

from locust import LoadTestShape

from loadtests.phases import Phase, black_friday_phases, phase_at


class PhaseListener(Protocol):
    def new_run(self) -> None: ...

    def enter_phase(self, phase: Phase) -> None: ...

    def shape_finished(self) -> None: ...


class BlackFridayShape(LoadTestShape):
    """Baseline ramp to 10 shoppers, ramp to the peak, hold the peak, cool down; scaled by --time-scale and
    --peak-users, plus --bots. Each tick tells `listener` which phase runs (the locustfile's per-phase recording)."""

    # Set by the locustfile from its options: who runs, how many users of fixed count (bots, the doorbuster's crowd
    # and bots: each class has fixed_count), the listener.
    user_classes: list = []
    fixed_users: int = 0
    listener: PhaseListener | None = None

    # Ticks since the run started; None before any run.
    ticks: int | None = None

    def reset_time(self):
        # locust calls this as each run starts, before the first tick: the place to start afresh. (test_start
        # comes after the first tick, and again whenever a tick restarts a spawn that had not finished.) A master
        # calls it a second time right after the first tick, as it sends its workers their first users: that is
        # the same run, whose first phase has started (a new run there would restart the phase clock after the
        # workers' first requests and read the app's counters again).
        super().reset_time()
        if self.ticks == 1:
            return
        self.ticks = 0
        if self.listener is not None:
            self.listener.new_run()

    def plan(self) -> list[Phase]:
        options = self.runner.environment.parsed_options
        return black_friday_phases(
            time_scale=options.time_scale, peak_users=options.peak_users, doorbuster=bool(options.doorbuster_product)
        )

    def tick(self):
        self.ticks = (self.ticks or 0) + 1
        phase = phase_at(self.plan(), self.get_run_time())
        if phase is None:
            # The only way a run completes: a run stopped before this (Ctrl-C, Stop, --run-time) is INCOMPLETE.
            if self.listener is not None:
                self.listener.shape_finished()
            return None
        if self.listener is not None:
            self.listener.enter_phase(phase)
        # The phases count shoppers; bots and the doorbuster's crowd come on top for the whole run (locust starts
        # fixed_count users first, and a class added mid-run would only get users as others stop): the crowd idles
        # until its phase.
        # locust spawns them first, so the rate carries them too: the first shoppers start in the first second, not
        # after a hundred idle users spawned at the baseline's one a second.
        users = phase.users_at(self.get_run_time()) + self.fixed_users
        return users, phase.spawn_rate() + self.fixed_users, self.user_classes
