"""`make loadtest WORKERS=2` end to end: a locust master and two worker processes on 127.0.0.1 against the test
database's gunicorn, checked against one process on the same fixed workload; and a run stopped before its shape
finished, which must say INCOMPLETE and exit non-zero.

The fixed workload: 6 shoppers (`--peak-users 6`), each doing exactly 5 actions back to back
(`--actions-per-user 5`) and then idling until the run ends, so the shopper actions number 30 however the machine
is loaded and however the users are split between workers. Each action sends one request of
`endpoints.SHOPPER_ACTIONS`; what comes on top depends on chance (a sold-out product's verify read, a replayed
checkout) or on timing (the catalogue read of users starting together), so those are checked against locust's own
counts, not against a fixed number.
"""

import json
import os
import signal
import subprocess
import sys
import time

from loadtests import endpoints
from tests.loadtests.runs import (
    NO_LATENCY_LIMITS,
    PROJECT_DIR,
    SMOKE_ARGS,
    free_smoke_port,
    locust_counts,
    port_answers,
    run_loadtest,
)
from tests.workers import HEAVY

pytestmark = HEAVY

SHOPPERS, ACTIONS = 6, 5
# 9.3 s of shape: every shopper has started by the end of the ramp (4.5 s) and has the peak's 4.5 s to finish.
FIXED_ARGS = ("--time-scale", "0.005", "--peak-users", str(SHOPPERS))


def fixed_run(server_env, results_dir, port, *run_args):
    result = run_loadtest(
        server_env,
        results_dir,
        port,
        "--actions-per-user",
        str(ACTIONS),
        # The doorbuster's crowd races on the clock; the fixed workload is the shoppers' alone.
        "--doorbuster-units",
        "0",
        *NO_LATENCY_LIMITS,
        run_args=(*FIXED_ARGS, *run_args),
        bots=0,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((results_dir / "summary.json").read_text())


def test_two_workers_are_all_counted_the_same_as_one_process_on_a_fixed_workload(server_env, tmp_path):
    port = free_smoke_port()
    master_port = free_smoke_port(besides=(port,))

    # when: the fixed workload in one process, then under a master with two workers
    alone = fixed_run(server_env, tmp_path / "alone", port)
    distributed = fixed_run(server_env, tmp_path / "workers", port, "--workers", "2", "--master-port", str(master_port))

    # then: both count every action once, and every request locust counted
    for summary, results_dir in ((alone, tmp_path / "alone"), (distributed, tmp_path / "workers")):
        whole_run = summary["all"]["endpoints"]
        assert sum(whole_run[name]["requests"] for name in endpoints.SHOPPER_ACTIONS if name in whole_run) == (
            SHOPPERS * ACTIONS
        )
        assert whole_run[endpoints.SESSION_CREATE]["requests"] == SHOPPERS
        counts = locust_counts(results_dir)
        assert counts.pop("Aggregated") == (summary["all"]["totals"]["requests"], 0)
        assert counts == {name: (row["requests"], row["failures"]) for name, row in whole_run.items()}
        assert summary["all"]["checkout"]["shopper"]["attempts"] == whole_run[endpoints.CHECKOUT]["requests"]
        assert summary["verdict"] == "PASSED"
        # The phase windows hold every request the server logged: the first phase starts before the first request
        # (a master once restarted its clock as it sent its workers their first users).
        assert summary["app_time"]["all"]["requests"] == summary["all"]["totals"]["requests"]
    # and each of the two workers sent its share, all of it in the master's summary
    per_worker = distributed["run"]["worker_requests"]
    assert len(per_worker) == 2 and min(per_worker.values()) > 0
    assert sum(per_worker.values()) == distributed["all"]["totals"]["requests"]
    assert alone["run"]["worker_requests"] == {}
    assert not port_answers(master_port)


def test_a_run_stopped_before_its_shape_finished_is_incomplete_and_exits_non_zero(server_env, tmp_path):
    port = free_smoke_port()
    results_dir = tmp_path / "stopped"
    # The smoke run's 12 shoppers and a bot on a longer shape (37 s: baseline 6 s, ramp until 18 s): stopped early.
    run_args = [arg if arg != "0.003" else "0.02" for arg in SMOKE_ARGS]
    command = [
        sys.executable,
        "-m",
        "loadtests.run",
        "--host",
        f"http://127.0.0.1:{port}",
        *run_args,
        "--results-dir",
        str(results_dir),
        "--",
        *NO_LATENCY_LIMITS,
    ]
    # As in a terminal: Ctrl-C reaches the runner and locust (one process group), not gunicorn (its own session).
    runner = subprocess.Popen(
        command,
        cwd=PROJECT_DIR,
        env=server_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        # locust writes its CSV from its first second of load on
        wait_while(lambda: not (results_dir / "locust_stats.csv").exists(), runner, seconds=60)
        load_started = time.monotonic()
        wait_while(lambda: time.monotonic() < load_started + 8, runner, seconds=10)

        # when: Ctrl-C some 8 s into the run
        os.killpg(runner.pid, signal.SIGINT)
        output = runner.communicate(timeout=60)[0]
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()

    # then: INCOMPLETE with the phases it reached and what it measured, never PASSED, exit code 3
    assert runner.returncode == 3, output[-3000:]
    assert "INCOMPLETE: stopped after" in output
    assert "PASSED" not in output
    summary = json.loads((results_dir / "summary.json").read_text())
    assert (summary["verdict"], summary["passed"]) == ("INCOMPLETE", False)
    completion = summary["completion"]
    assert completion["finished"] is False
    assert completion["phases_reached"][0] == "baseline"
    assert "peak" in completion["phases_not_reached"]
    assert summary["all"]["totals"]["requests"] > 0
    assert "gunicorn stopped" in output
    assert not port_answers(port)


def wait_while(condition, runner: subprocess.Popen, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while condition():
        assert time.monotonic() < deadline and runner.poll() is None, runner.communicate()[0][-3000:]
        time.sleep(0.2)
