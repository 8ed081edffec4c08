"""Load tests for the shop: the Black-Friday shape, its users, per-phase recording, thresholds and reports.

Only `locustfile.py`, `shape.py` and `webui.py` import locust (and with it gevent's monkey-patching); the other
modules are plain Python, so the test suite can import them.
"""
