-- The newest schema: a new database is made from it and stamped with every migration's version
-- (flaskr_async/db/migrations/). A change goes in a new numbered migration and here too; the
-- tests fail until both make the same tables.

CREATE TABLE IF NOT EXISTS user (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT UNIQUE NOT NULL,
  -- flaskr_async.identity.username_key(username): one account per name, however it is spelt.
  -- NULL only for names from an older database that PRECIS refuses or that share a key.
  username_key TEXT,
  password TEXT NOT NULL,
  -- Unix time of the last password change (0: never): browsers known to the login throttle
  -- from before it are forgotten (flaskr_async/accounts/devices.py).
  password_changed_at REAL NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX IF NOT EXISTS user_username_key_unique ON user (username_key);

CREATE TABLE IF NOT EXISTS post (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  author_id INTEGER NOT NULL,
  created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  -- When the post was last edited (NULL: never): the index marks it edited.
  updated TIMESTAMP,
  title TEXT NOT NULL,
  body TEXT NOT NULL,
  FOREIGN KEY (author_id) REFERENCES user (id) ON DELETE CASCADE
);

-- Every change to a post, written in the same transaction as the change: the live index's feed
-- (flaskr_async/live/__init__.py). Its id is the event id of the stream on every worker and host; the
-- table keeps the newest LIVE_HISTORY rows. No foreign key: a deletion's event outlives its post.
CREATE TABLE IF NOT EXISTS post_event (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  post_id INTEGER NOT NULL,
  kind TEXT NOT NULL,  -- created, updated or deleted
  at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Login sessions: the signed cookie carries a random id, and this row makes the session real,
-- so logout and expiry end it on the server (OWASP ASVS V3.3), for every worker and host.
CREATE TABLE IF NOT EXISTS user_session (
  id_hash TEXT PRIMARY KEY,  -- SHA-256 of the id: a copy of this table logs nobody in
  user_id INTEGER NOT NULL REFERENCES user (id) ON DELETE CASCADE,
  created_at REAL NOT NULL,
  last_seen_at REAL NOT NULL,
  -- The User-Agent the session began with, shortened: it helps its user recognise it on
  -- /auth/sessions, and tells no one else anything (only its own user is shown it).
  user_agent TEXT NOT NULL DEFAULT '',
  -- The id_hash of the login this session descends from (kept when its id is rotated): the
  -- password form's failures count per login, so a new id wins no new guesses.
  login_id TEXT NOT NULL DEFAULT ''
);

CREATE INDEX IF NOT EXISTS user_session_user ON user_session (user_id);

CREATE INDEX IF NOT EXISTS user_session_created_at ON user_session (created_at);

CREATE INDEX IF NOT EXISTS user_session_last_seen_at ON user_session (last_seen_at);

-- Login attempts, reserved before the password is checked and deleted when it matches: what
-- remains are failures, shared by every worker (and every host) through the database.
CREATE TABLE IF NOT EXISTS login_attempt (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT NOT NULL,
  address TEXT NOT NULL,
  device TEXT,  -- the id of a browser that has logged in as this user before, if it sent one
  attempted_at REAL NOT NULL
);

CREATE INDEX IF NOT EXISTS login_attempt_username ON login_attempt (username, address, attempted_at);

CREATE INDEX IF NOT EXISTS login_attempt_address ON login_attempt (address, attempted_at);

CREATE INDEX IF NOT EXISTS login_attempt_device ON login_attempt (device, attempted_at);

CREATE INDEX IF NOT EXISTS login_attempt_attempted_at ON login_attempt (attempted_at);
