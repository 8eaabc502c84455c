-- What starts builds: webhook deliveries (kept so that a redelivery is
-- recognised) and scan requests (a push to look at), which the scan worker
-- takes in order and which survive a restart until done.

-- One row per delivery a forge sent; the forge reuses the id on redelivery.
CREATE TABLE build_webhook_deliveries (
    forge        TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    project_id   INTEGER REFERENCES build_projects (id) ON DELETE SET NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (forge, delivery_id)
);

-- A push to scan for changed recipes: `before_commit` is the forge's view of
-- the old head (the scan prefers the project's last_commit), `after_commit`
-- the pushed commit. `source` is the forge, or `poll`.
CREATE TABLE build_scans (
    id             INTEGER PRIMARY KEY,
    project_id     INTEGER NOT NULL REFERENCES build_projects (id) ON DELETE CASCADE,
    before_commit  TEXT,
    after_commit   TEXT NOT NULL,
    branch         TEXT NOT NULL,
    source         TEXT NOT NULL,
    requested_at   INTEGER NOT NULL,
    done_at        INTEGER,
    jobs_queued    INTEGER,
    error          TEXT
);
CREATE INDEX build_scans_pending ON build_scans (done_at, id);
