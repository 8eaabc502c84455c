-- Automatic builds: build projects, the persistent build queue, build logs.
-- Times are Unix milliseconds, flags 0/1 integers, lists JSON text.

-- A repository whose recipes are built into a collection. Secrets are
-- stored sealed with the server's key (see sealing.rs), never in clear.
CREATE TABLE build_projects (
    id                    INTEGER PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    repository            TEXT NOT NULL,
    branch                TEXT NOT NULL,
    recipe_globs          TEXT NOT NULL DEFAULT '[]',
    collection_id         INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    backend               TEXT,
    agent_labels          TEXT NOT NULL DEFAULT '[]',
    forge                 TEXT,
    forge_api_url         TEXT,
    forge_repository      TEXT,
    forge_token_sealed    TEXT,
    webhook_secret_sealed TEXT,
    poll_interval_seconds INTEGER,
    last_commit           TEXT,
    owner_id              INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    created_at            INTEGER NOT NULL
);
CREATE INDEX build_projects_collection ON build_projects (collection_id);

-- One build of one recipe at one commit. `lease_id_hash` is a SHA-256 of
-- the lease id handed to the agent (the id itself is never stored).
CREATE TABLE build_jobs (
    id               INTEGER PRIMARY KEY,
    project_id       INTEGER NOT NULL REFERENCES build_projects (id) ON DELETE CASCADE,
    repository       TEXT NOT NULL,
    branch           TEXT NOT NULL,
    commit_sha       TEXT NOT NULL,
    recipe_path      TEXT NOT NULL,
    reference        TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN
                       ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'superseded')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    backend          TEXT,
    agent_labels     TEXT NOT NULL DEFAULT '[]',
    agent            TEXT,
    lease_id_hash    TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    queued_at        INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    error            TEXT,
    image_sha256     TEXT,
    log_size         INTEGER NOT NULL DEFAULT 0
);
-- The lease query: oldest queued first.
CREATE INDEX build_jobs_state_queued ON build_jobs (state, queued_at, id);
-- The reaper: running jobs by lease expiry.
CREATE INDEX build_jobs_state_expiry ON build_jobs (state, lease_expires_at);
CREATE INDEX build_jobs_project ON build_jobs (project_id, recipe_path, state);

-- A build log as the chunks the agent sent, each at its byte offset, so
-- that a resent chunk is recognised and reading from an offset is a range
-- query.
CREATE TABLE build_log_chunks (
    job_id     INTEGER NOT NULL REFERENCES build_jobs (id) ON DELETE CASCADE,
    start_at   INTEGER NOT NULL,
    bytes      BLOB NOT NULL,
    PRIMARY KEY (job_id, start_at)
);
