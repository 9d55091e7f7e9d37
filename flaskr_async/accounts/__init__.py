"""Account safety: what auth.py calls to make a login safe, in the order a login uses it.

- ``throttle``: each attempt is counted before its password is checked (per address, username,
  account and known browser, over LOGIN_FAILURE_WINDOW).
- ``passwords``: argon2id hashing off the event loop, a cap on concurrent hashes, upgrades.
- ``login_sessions``: login sessions kept on the server, so that logout and expiry end them.
- ``devices``: the signed cookie that makes a browser known to an account's throttle.

Each module reads the database through ``flaskr_async.db`` and nothing above it: no view, no
middleware. Skip this folder on a first reading; ``auth.py`` shows where each step happens.
"""
