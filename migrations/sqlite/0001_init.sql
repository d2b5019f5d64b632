-- sworn server datastore, SQLite dialect. Timestamps are unix seconds.

CREATE TABLE entries (
    id                 TEXT PRIMARY KEY NOT NULL,
    spiffe_id          TEXT,
    spiffe_id_template TEXT,
    selectors          TEXT NOT NULL,          -- JSON array of canonical selectors
    node               TEXT,                   -- agent ID the entry is scoped to; NULL = any agent
    ttl_seconds        INTEGER,
    dns_names          TEXT NOT NULL,          -- JSON array
    hint               TEXT NOT NULL DEFAULT '',
    created_at         INTEGER NOT NULL,
    CHECK ((spiffe_id IS NULL) <> (spiffe_id_template IS NULL))
);

CREATE TABLE agents (
    id           TEXT PRIMARY KEY NOT NULL,
    method       TEXT NOT NULL,                -- join_token | k8s
    node_name    TEXT NOT NULL DEFAULT '',
    node_uid     TEXT NOT NULL DEFAULT '',
    pod_uid      TEXT NOT NULL DEFAULT '',
    cluster      TEXT NOT NULL DEFAULT '',
    serial       TEXT NOT NULL,                -- latest agent SVID serial
    prev_serial  TEXT,                         -- accepted until `serial` is first used
    expires_at   INTEGER NOT NULL,
    banned       INTEGER NOT NULL DEFAULT 0,
    attested_at  INTEGER NOT NULL
);

-- Root certificates of the trust bundle; rows are removed only when nothing
-- they signed can still be valid.
CREATE TABLE bundle (
    der        BLOB PRIMARY KEY NOT NULL,
    not_after  INTEGER NOT NULL,
    added_at   INTEGER NOT NULL
);

-- Join tokens are stored only as SHA-256 hashes.
CREATE TABLE join_tokens (
    hash        TEXT PRIMARY KEY NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    used_at     INTEGER
);

-- Credential IDs (JTI) of agent tokens that attested once.
CREATE TABLE used_credentials (
    jti         TEXT PRIMARY KEY NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    decision  TEXT NOT NULL,
    detail    TEXT NOT NULL
);
