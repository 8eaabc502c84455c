-- The registry's data model (architecture.md "Names"). Times are Unix
-- milliseconds, flags are 0/1 integers, so that one query layer serves both
-- SQLite and PostgreSQL.

-- Users and teams are entities; an entity owns collections.
CREATE TABLE entities (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('user', 'team')),
    description     TEXT NOT NULL DEFAULT '',
    default_private INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);

CREATE TABLE users (
    entity_id  INTEGER PRIMARY KEY REFERENCES entities (id) ON DELETE CASCADE,
    email      TEXT NOT NULL DEFAULT '',
    is_admin   INTEGER NOT NULL DEFAULT 0,
    active     INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE team_members (
    team_id  INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    role     TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    PRIMARY KEY (team_id, user_id)
);

-- API tokens: only a SHA-256 of the token is kept. `sealed` holds the token
-- encrypted with the server's key, for the one protocol (sregistry-cli's
-- HMAC) that needs the token itself as a key.
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    sealed       TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE collections (
    id          INTEGER PRIMARY KEY,
    entity_id   INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    private     INTEGER NOT NULL DEFAULT 0,
    created_by  INTEGER REFERENCES entities (id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    downloads   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (entity_id, name)
);
CREATE INDEX collections_name ON collections (name);

-- Owners may push and delete; contributors may see and pull.
CREATE TABLE collection_members (
    collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'contributor')),
    PRIMARY KEY (collection_id, user_id)
);

CREATE TABLE containers (
    id               INTEGER PRIMARY KEY,
    collection_id    INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    full_description TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    downloads        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (collection_id, name)
);
CREATE INDEX containers_name ON containers (name);

-- Content: one row per stored SIF, named by its sha256.
CREATE TABLE blobs (
    digest     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- An image is a SIF in a container, content-addressed by its sha256
-- (`sha256.<hex>`); it becomes visible to pulls only once `uploaded`.
CREATE TABLE images (
    id           INTEGER PRIMARY KEY,
    container_id INTEGER NOT NULL REFERENCES containers (id) ON DELETE CASCADE,
    hash         TEXT NOT NULL,
    size         INTEGER NOT NULL DEFAULT 0,
    arch         TEXT NOT NULL DEFAULT '',
    uploaded     INTEGER NOT NULL DEFAULT 0,
    blob_digest  TEXT REFERENCES blobs (digest),
    description  TEXT NOT NULL DEFAULT '',
    signed       INTEGER NOT NULL DEFAULT 0,
    encrypted    INTEGER NOT NULL DEFAULT 0,
    deffile      TEXT,
    labels       TEXT,
    partitions   TEXT,
    build        TEXT,
    created_by   INTEGER REFERENCES entities (id) ON DELETE SET NULL,
    created_at   INTEGER NOT NULL,
    uploaded_at  INTEGER,
    downloads    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (container_id, hash)
);
CREATE INDEX images_blob ON images (blob_digest);

-- Tags point at images, per architecture; a frozen tag never moves.
CREATE TABLE tags (
    container_id INTEGER NOT NULL REFERENCES containers (id) ON DELETE CASCADE,
    arch         TEXT NOT NULL,
    name         TEXT NOT NULL,
    image_id     INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    frozen       INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (container_id, arch, name)
);
CREATE INDEX tags_image ON tags (image_id);

-- Uploads under way: bytes go to a temporary object until verified.
CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    image_id    INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL DEFAULT '',
    part_size   INTEGER NOT NULL DEFAULT 0,
    total_parts INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE upload_parts (
    upload_id   TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

CREATE TABLE pulls (
    id       INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    user_id  INTEGER REFERENCES entities (id) ON DELETE SET NULL,
    client   TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX pulls_image ON pulls (image_id);

CREATE TABLE stars (
    user_id      INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    container_id INTEGER NOT NULL REFERENCES containers (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, container_id)
);
CREATE INDEX stars_container ON stars (container_id);

-- Public keys served over HKP (/pks/add, /pks/lookup).
CREATE TABLE pgp_keys (
    fingerprint TEXT PRIMARY KEY,
    armored     TEXT NOT NULL,
    uids        TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
