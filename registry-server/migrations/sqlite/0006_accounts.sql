-- Web sign-in: a password per user (an argon2 PHC string; NULL means the
-- user cannot sign in with a password), browser sessions and failed sign-ins.

ALTER TABLE users ADD COLUMN password_hash TEXT;

-- Only a SHA-256 of the session id is kept, so that a copy of the database
-- cannot be used to take over a session.
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Failed sign-ins, counted per account name and per client address over a
-- window to slow down password guessing.
CREATE TABLE login_failures (
    id      INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    client  TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX login_failures_account ON login_failures (account, at);
CREATE INDEX login_failures_client ON login_failures (client, at);
