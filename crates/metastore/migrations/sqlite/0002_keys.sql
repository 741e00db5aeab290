-- API keys and deploy keys become one table with a kind: the same columns, calls and rules for both.
-- `owner_id` is an API key's user (the key dies with that user); `user_id` is that owner, or whoever made a deploy
-- key (cleared when that user is deleted, so a deploy key outlives its creator). A hash is unique within its kind.
CREATE TABLE keys (
    id BLOB PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('api', 'deploy')),
    org_id BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    owner_id BLOB,
    user_id BLOB REFERENCES users (id) ON DELETE SET NULL,
    description TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER,
    UNIQUE (kind, key_hash),
    CHECK ((kind = 'api') = (owner_id IS NOT NULL)),
    FOREIGN KEY (org_id, owner_id) REFERENCES users (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX keys_org_kind_idx ON keys (org_id, kind, user_id);

INSERT INTO keys (id, kind, org_id, owner_id, user_id, description, key_hash, prefix, created_at, last_used_at,
                  revoked_at)
SELECT id, 'api', org_id, user_id, user_id, description, key_hash, prefix, created_at, last_used_at, revoked_at
FROM api_keys;
INSERT INTO keys (id, kind, org_id, owner_id, user_id, description, key_hash, prefix, created_at, last_used_at,
                  revoked_at)
SELECT id, 'deploy', org_id, NULL, created_by, description, key_hash, prefix, created_at, last_used_at, revoked_at
FROM deploy_keys;

DROP TABLE api_keys;
DROP TABLE deploy_keys;
