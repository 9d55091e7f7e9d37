-- The live index's feed: every change to a post, written in the change's transaction.
CREATE TABLE IF NOT EXISTS post_event (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  post_id INTEGER NOT NULL,
  kind TEXT NOT NULL,
  at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
