-- Cron scripts get a name (unique in the org, what `px cron` addresses them by) and a schedule that is either a
-- period (`frequency_s` > 0) or a cron expression (`cron_expr`), never both. A script from before gets its id (hex)
-- as its name.
ALTER TABLE cron_scripts ADD COLUMN name TEXT;
UPDATE cron_scripts SET name = replace(id::text, '-', '');
ALTER TABLE cron_scripts ALTER COLUMN name SET NOT NULL;
ALTER TABLE cron_scripts ADD COLUMN cron_expr TEXT NOT NULL DEFAULT '';
ALTER TABLE cron_scripts ALTER COLUMN cron_expr DROP DEFAULT;
ALTER TABLE cron_scripts DROP CONSTRAINT cron_scripts_frequency_s_check;
ALTER TABLE cron_scripts ADD CONSTRAINT cron_scripts_frequency_s_check CHECK (frequency_s >= 0);
ALTER TABLE cron_scripts ADD CONSTRAINT cron_scripts_schedule_check CHECK ((frequency_s > 0) <> (cron_expr <> ''));
CREATE UNIQUE INDEX cron_scripts_org_name_idx ON cron_scripts (org_id, name);

-- The last results of each cron script, one row per run of one vizier. A run is (script, vizier, scheduled time):
-- a result the vizier sends again (its acknowledgement was lost) is the same run and is stored once.
CREATE TABLE cron_script_results (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    cron_id UUID NOT NULL REFERENCES cron_scripts (id) ON DELETE CASCADE,
    vizier_id UUID NOT NULL,
    run_at BIGINT NOT NULL,
    duration_ns BIGINT NOT NULL,
    error_code BIGINT NOT NULL,
    error TEXT NOT NULL,
    records BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    UNIQUE (cron_id, vizier_id, run_at)
);
CREATE INDEX cron_script_results_cron_idx ON cron_script_results (cron_id, run_at);
