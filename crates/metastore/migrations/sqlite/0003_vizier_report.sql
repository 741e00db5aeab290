-- What a vizier's heartbeats report besides its status: how many agents it runs and the address (host:port) at
-- which clients may reach its query endpoint ('' until it reports one).
ALTER TABLE viziers ADD COLUMN num_agents INTEGER NOT NULL DEFAULT 0;
ALTER TABLE viziers ADD COLUMN address TEXT NOT NULL DEFAULT '';
