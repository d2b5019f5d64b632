-- Node bans, credential lifetimes and audit retention (docs/architecture.md, "Bans" and
-- "Storage"). No row is removed or rewritten here.

-- A ban of a Kubernetes agent bans its node: an agent is refused when its cluster matches
-- and its node UID or its node name does, so neither a re-created agent pod (a new agent
-- ID) nor a node re-created under the same name (a new node UID) evades it. `agent_id` is
-- the agent the ban was given for; `agent unban` of it lifts the ban.
CREATE TABLE node_bans (
    cluster    TEXT NOT NULL,
    node_uid   TEXT NOT NULL,
    node_name  TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    PRIMARY KEY (cluster, node_uid, node_name)
);

-- The token's own `exp` (unix seconds), when it was read. `expires_at` is when the row may
-- go: never before `token_exp` plus the clock skew allowance, so a token can never attest
-- twice. Rows written before this column have NULL and their old `expires_at`.
ALTER TABLE used_credentials ADD COLUMN token_exp INTEGER;
CREATE INDEX used_credentials_expires_at ON used_credentials (expires_at);

-- Retention prunes by age in batches.
CREATE INDEX audit_at ON audit (at);
