-- Facts about this registry instance itself.
CREATE TABLE registry_info (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
