"""Running the app: the serve command, its shutdown, and the development server's reloads.

- ``command``: ``python -m flaskr_async serve`` (``make run``): hypercorn with the shipped
  config, a first-run secret key, start-up failures as one line and a non-zero exit.
- ``access_log``: hypercorn's access log, the client's text escaped as nginx escapes it.
- ``plain_http``: ``--plain-http`` (make run): no Secure cookie unless config.py or the
  environment sets it.
- ``listening``: a failure to listen said with its address and how to choose another.
- ``shutdown``: SIGTERM ends the live streams first, so stopping never waits on them.
- ``event_loops``: asyncio's own loop, or uvloop's where hypercorn's config names it.
- ``devserver``: quiet reloads under ``quart --app flaskr_async run --debug`` (installed by
  ``create_app``).

``command``, ``plain_http`` and ``shutdown`` call ``create_app``; nothing in the app imports
them. Skip this folder on a first reading: ``hypercorn asgi:app`` serves the same app without it.
"""
