-- Version 2: flaskr_async/schema.sql at commit 4eb0796, verbatim below this line.
-- Created at start-up when missing (`init-db` drops the tables first).

CREATE TABLE IF NOT EXISTS user (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT UNIQUE NOT NULL,
  password TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS post (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  author_id INTEGER NOT NULL,
  created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  title TEXT NOT NULL,
  body TEXT NOT NULL,
  FOREIGN KEY (author_id) REFERENCES user (id) ON DELETE CASCADE
);

-- Failed logins, kept in the database so every worker (and every host) sees them.
CREATE TABLE IF NOT EXISTS login_failure (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT NOT NULL,
  address TEXT NOT NULL,
  failed_at REAL NOT NULL
);

CREATE INDEX IF NOT EXISTS login_failure_username ON login_failure (username, failed_at);

CREATE INDEX IF NOT EXISTS login_failure_address ON login_failure (address, failed_at);

CREATE INDEX IF NOT EXISTS login_failure_failed_at ON login_failure (failed_at);
