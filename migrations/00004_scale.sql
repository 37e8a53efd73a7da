-- +goose Up

-- One retry schedule and circuit per destination (docs/design.md §7.3),
-- shared by every worker process: after a failed call no row of the
-- destination is claimed before hold_until; failures counts failed calls in
-- a row (worker.circuit_failures of them open the circuit: one probe call at
-- a time until one succeeds).
CREATE TABLE destination_status (
    destination text PRIMARY KEY,
    failures    int         NOT NULL DEFAULT 0,
    hold_until  timestamptz,
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Identity locks (store.Tx.LockIdentities): a row per identity (the first
-- 8 bytes of its keyed hash, no personal data) ever locked; reconciliation
-- and erasure lock the rows of the identities they touch, in key order.
-- Row locks, unlike advisory locks, take no room in the server's shared
-- lock table, so a 10,000-event request can take 10,000 of them.
CREATE TABLE identity_locks (
    lock_key bigint PRIMARY KEY
);

-- Inbound rows are claimed in batches, oldest first (worker.inbound_batch).
CREATE INDEX inbound_events_received ON inbound_events (id) WHERE status = 'received';

-- +goose Down
DROP INDEX inbound_events_received;
DROP TABLE identity_locks;
DROP TABLE destination_status;
