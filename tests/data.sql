-- Fixture rows, loaded through the database seam so they suit every backend.
-- The passwords are "test" and "other", hashed as registering hashes them in the tests
-- (argon2id at its smallest cost: tests/conftest.py), so a login neither pays OWASP's cost nor
-- rehashes. werkzeug's hashes, Flaskr's own included, are upgraded on login by their own tests.
INSERT INTO "user" (username, username_key, password)
VALUES
  ('test', 'test', '$argon2id$v=19$m=8,t=1,p=1$UX291NMCTyStQLpigLNsAg$4tzau1VQgKrquZjKgAVyTv2acHPYCuliBoGwmlJ2dus'),
  ('other', 'other', '$argon2id$v=19$m=8,t=1,p=1$BvAsVZwOHz1z1MWNIMT+LQ$5qGdKCYx9XVKioDBoGRzgwmLL1Z/HH/GeWntKhPTszw');

INSERT INTO post (title, body, author_id, created)
VALUES
  ('test title', 'test
body', 1, '2018-01-01 00:00:00');
