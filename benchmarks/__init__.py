"""The benchmark harness of flaskr-async: ``python -m benchmarks [options]`` from the project root.

It seeds SQLite databases, serves the app and its references (a bare ASGI callable, a plain
Quart hello, Flask + sqlite3 on gunicorn) on 127.0.0.1, drives them with wrk in interleaved,
repeated runs, discards runs with too much CPU steal, and prints medians, ratios and the goals
met or missed. The phases run in this order: ``hello``, ``index``, ``logins``, ``flood``,
``postgres``, ``costs``, then ``startup`` once every other server has stopped, the report, and
``live`` last with its own servers and lines; ``--phases`` picks a subset.
"""
