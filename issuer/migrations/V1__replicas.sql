-- The state several svctoken replicas share. Private keys are never stored here: each
-- replica keeps its own in its data_dir (or its HSM); this holds public keys and schedules.

-- One row per replica: its key lineage (the key set it alone signs with) and its lease.
CREATE TABLE svctoken_key_sets (
    replica_id  text PRIMARY KEY,
    -- Compare-and-replace counter of key_set.
    generation  bigint NOT NULL DEFAULT 0,
    -- The replica's key set: public JWKs, states and times, revocations.
    key_set     jsonb NOT NULL DEFAULT '{"generation":0,"keys":[],"revoked":[]}',
    -- Unix seconds until which the replica may sign; renewed while it runs. Once it has
    -- lapsed, the other replicas retire its keys.
    lease_until bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- private_key_jwt assertions seen, until they expire: a digest of (client, jti).
CREATE TABLE svctoken_replay (
    digest     bytea PRIMARY KEY,
    expires_at bigint NOT NULL
);
CREATE INDEX svctoken_replay_expires_at ON svctoken_replay (expires_at);

-- One token bucket per client, shared by every replica.
CREATE TABLE svctoken_rate_limit (
    client_id text PRIMARY KEY,
    tokens    double precision NOT NULL,
    at        double precision NOT NULL,
    allowed   boolean NOT NULL
);

-- The audit trail: one hash chain per replica, lines exactly as a chained file holds them,
-- a row per batch written (lines first_seq to last_seq, each ending in a newline).
CREATE TABLE svctoken_audit (
    replica_id text NOT NULL,
    first_seq  bigint NOT NULL,
    last_seq   bigint NOT NULL,
    lines      text NOT NULL,
    PRIMARY KEY (replica_id, first_seq)
);

-- The head of each replica's chain (line count, hash of the last line), updated with it.
CREATE TABLE svctoken_audit_heads (
    replica_id text PRIMARY KEY,
    lines      bigint NOT NULL,
    head       text NOT NULL
);
