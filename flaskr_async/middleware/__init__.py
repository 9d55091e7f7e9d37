"""Request hardening: what every request and response passes through, around Flaskr's views.

``create_app`` installs these in this order (each line says why it stands there):

- ``body_limits``: every form's body is bounded in bytes and fields before anything parses it.
- ``cookie_session``: the signed session cookie, without work for requests that carry none.
- ``boundary``: malformed targets, ambiguous framing and foreign hosts refused before Quart runs
  (``refusals``: the page and the log); installed before ``security`` so that its ProxyFix
  wraps this check.
- ``security``: secure cookie defaults, CSRF, response headers, the proxy, error pages (their
  words in ``error_pages``); after the blueprints, so the user is loaded before the CSRF check.
- ``deadlines``: every write to a client has a deadline; outermost, whatever layer answers.

None of them imports a view or anything in ``serving``. Skip this folder on a first reading.
"""
