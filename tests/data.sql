-- Fixture rows, loaded through the database seam so they suit every backend.
-- The passwords are "test" and "other", hashed as registering hashes them today (argon2id):
-- werkzeug's hashes, Flaskr's own included, are upgraded on login by their own tests.
INSERT INTO "user" (username, username_key, password)
VALUES
  ('test', 'test', '$argon2id$v=19$m=19456,t=2,p=1$dy1jdTAtZGlMQthorF8KOQ$GGgjsus9sSjAjer0tjDUMLyJwUGmDQZeSjwz5lrlzIc'),
  ('other', 'other', '$argon2id$v=19$m=19456,t=2,p=1$9j0gTstgdEeMQSRJn/xb0w$POgeLuJc2/c9hAEJsvlgmLWEhvtS4PxjvaEQoCsr1nU');

INSERT INTO post (title, body, author_id, created)
VALUES
  ('test title', 'test
body', 1, '2018-01-01 00:00:00');
