-- Login sessions kept on the server, and login attempts (counted before the password is
-- checked) in place of failures.
CREATE TABLE IF NOT EXISTS user_session (
  id_hash TEXT PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES user (id) ON DELETE CASCADE,
  created_at REAL NOT NULL,
  last_seen_at REAL NOT NULL
);

CREATE INDEX IF NOT EXISTS user_session_user ON user_session (user_id);

CREATE INDEX IF NOT EXISTS user_session_created_at ON user_session (created_at);

CREATE INDEX IF NOT EXISTS user_session_last_seen_at ON user_session (last_seen_at);

CREATE TABLE IF NOT EXISTS login_attempt (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT NOT NULL,
  address TEXT NOT NULL,
  device TEXT,
  attempted_at REAL NOT NULL
);

CREATE INDEX IF NOT EXISTS login_attempt_username ON login_attempt (username, address, attempted_at);

CREATE INDEX IF NOT EXISTS login_attempt_address ON login_attempt (address, attempted_at);

CREATE INDEX IF NOT EXISTS login_attempt_device ON login_attempt (device, attempted_at);

CREATE INDEX IF NOT EXISTS login_attempt_attempted_at ON login_attempt (attempted_at);

DROP TABLE IF EXISTS login_failure;
