-- This app's first release: a user's posts are deleted with the user (Flaskr's key says
-- nothing), and failed logins are counted in the database.
-- SQLite cannot alter a foreign key: post is rebuilt with every row, ids included.
CREATE TABLE post_new (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  author_id INTEGER NOT NULL,
  created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  title TEXT NOT NULL,
  body TEXT NOT NULL,
  FOREIGN KEY (author_id) REFERENCES user (id) ON DELETE CASCADE
);

INSERT INTO post_new (id, author_id, created, title, body)
SELECT id, author_id, created, title, body FROM post;

-- AUTOINCREMENT never gives a deleted post's id again: keep the highest id ever given.
DELETE FROM sqlite_sequence WHERE name = 'post_new';

INSERT INTO sqlite_sequence (name, seq) SELECT 'post_new', seq FROM sqlite_sequence WHERE name = 'post';

DROP TABLE post;

ALTER TABLE post_new RENAME TO post;

-- IF NOT EXISTS here and in steps 3 to 5: an older version of this app may have made some of
-- their tables already, on a Flaskr database whose post key it left as it was.
CREATE TABLE IF NOT EXISTS login_failure (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT NOT NULL,
  address TEXT NOT NULL,
  failed_at REAL NOT NULL
);

CREATE INDEX IF NOT EXISTS login_failure_username ON login_failure (username, failed_at);

CREATE INDEX IF NOT EXISTS login_failure_address ON login_failure (address, failed_at);

CREATE INDEX IF NOT EXISTS login_failure_failed_at ON login_failure (failed_at);
