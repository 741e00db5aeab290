-- Loupe metastore, SQLite schema version 1 (STRICT tables).
-- Ids are 16-byte UUID BLOBs; timestamps are INTEGER Unix nanoseconds; the store computes them.
-- Keep this file and migrations/postgres/0001_init.sql describing the same tables.
-- Booleans are INTEGER 0/1; JSON columns are TEXT.

CREATE TABLE orgs (
    id BLOB PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    -- lowercased in Rust so both backends fold case the same way
    email_lower TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    must_change_password INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (org_id, id)
) STRICT;

CREATE TABLE invitations (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    token_hash TEXT NOT NULL UNIQUE,
    expires_at INTEGER NOT NULL,
    accepted_at INTEGER,
    created_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX invitations_org_id_idx ON invitations (org_id);

CREATE TABLE sessions (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX sessions_org_user_idx ON sessions (org_id, user_id);

CREATE TABLE api_keys (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    description TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER,
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX api_keys_org_user_idx ON api_keys (org_id, user_id);

CREATE TABLE deploy_keys (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    created_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    description TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
) STRICT;
CREATE INDEX deploy_keys_org_id_idx ON deploy_keys (org_id);

CREATE TABLE scripts (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    pxl TEXT NOT NULL,
    vis TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE viziers (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    cluster_uid TEXT NOT NULL,
    status TEXT NOT NULL,
    last_heartbeat_ns INTEGER,
    version TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE cron_scripts (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    script TEXT NOT NULL,
    cluster_ids TEXT NOT NULL,
    frequency_s INTEGER NOT NULL CHECK (frequency_s > 0),
    enabled INTEGER NOT NULL,
    configs TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX cron_scripts_org_id_idx ON cron_scripts (org_id);

CREATE TABLE user_settings (
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT;

CREATE TABLE org_settings (
    org_id BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (org_id, key)
) STRICT;

CREATE TABLE kv (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;
