"""The phase in locust's web UI: a "Black Friday" tab (one row per phase, the running one marked) and /phase.

locust's UI renders extra tabs from `extended_tabs`/`extended_tables` in its template arguments and fills them
from `extended_stats` in each /stats/requests answer, which it polls every two seconds.
"""

import json
from collections.abc import Callable

from flask import jsonify, request

TAB_KEY = "black-friday"
COLUMNS = (
    ("phase", "Phase"),
    ("state", "State"),
    ("window", "Planned window (s)"),
    ("users", "Users"),
    ("requests", "Requests"),
    ("rps", "RPS"),
    ("p95_ms", "p95 (ms)"),
    ("p99_ms", "p99 (ms)"),
    ("failures", "Failures"),
    ("checkouts_201", "Checkouts 201"),
)


def install(web_ui, phase_rows: Callable[[], list[dict]], current_phase: Callable[[], dict]) -> None:
    web_ui.template_args["extended_tabs"] = [{"title": "Black Friday", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB_KEY, "structure": [{"key": key, "title": title} for key, title in COLUMNS]}
    ]

    @web_ui.app.after_request
    def add_phase_rows(response):
        if request.path != "/stats/requests" or response.status_code != 200:
            return response
        body = response.get_json()
        body["extended_stats"] = [{"key": TAB_KEY, "data": phase_rows()}]
        response.set_data(json.dumps(body))
        return response

    @web_ui.app.route("/phase")
    def phase():
        return jsonify(current_phase())
