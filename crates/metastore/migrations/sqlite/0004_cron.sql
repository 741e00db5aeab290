-- Cron scripts get a name (unique in the org, what `px cron` addresses them by) and a schedule that is either a
-- period (`frequency_s` > 0) or a cron expression (`cron_expr`), never both. SQLite cannot change a CHECK, so the
-- table is rebuilt; a script from before gets its id (hex) as its name.
CREATE TABLE cron_scripts_new (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    script TEXT NOT NULL,
    cluster_ids TEXT NOT NULL,
    frequency_s INTEGER NOT NULL CHECK (frequency_s >= 0),
    cron_expr TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    configs TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK ((frequency_s > 0) <> (cron_expr <> ''))
) STRICT;
INSERT INTO cron_scripts_new (id, org_id, name, script, cluster_ids, frequency_s, cron_expr, enabled, configs,
                              created_at, updated_at)
SELECT id, org_id, lower(hex(id)), script, cluster_ids, frequency_s, '', enabled, configs, created_at, updated_at
FROM cron_scripts;
DROP TABLE cron_scripts;
ALTER TABLE cron_scripts_new RENAME TO cron_scripts;
CREATE UNIQUE INDEX cron_scripts_org_name_idx ON cron_scripts (org_id, name);

-- The last results of each cron script, one row per run of one vizier. A run is (script, vizier, scheduled time):
-- a result the vizier sends again (its acknowledgement was lost) is the same run and is stored once.
CREATE TABLE cron_script_results (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    cron_id BLOB NOT NULL REFERENCES cron_scripts (id) ON DELETE CASCADE,
    vizier_id BLOB NOT NULL,
    run_at INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    error_code INTEGER NOT NULL,
    error TEXT NOT NULL,
    records INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    UNIQUE (cron_id, vizier_id, run_at)
) STRICT;
CREATE INDEX cron_script_results_cron_idx ON cron_script_results (cron_id, run_at);
