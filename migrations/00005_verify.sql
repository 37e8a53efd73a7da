-- +goose Up

-- Read-back verification (docs/design.md §4.3): after a suppression is
-- sent, the destination is asked whether it holds it. verify_due_at is when
-- to ask (NULL: nothing to ask: the destination cannot be read back, or
-- the row is verified or given up); verified_at is when it answered yes.
-- A "no" puts the row back to pending (re-pushed) and counts a mismatch.
ALTER TABLE suppression_outbox
    ADD COLUMN verify_due_at   timestamptz,
    ADD COLUMN verified_at     timestamptz,
    ADD COLUMN verify_attempts int NOT NULL DEFAULT 0,
    ADD COLUMN verify_receipt  text,
    ADD COLUMN mismatches      int NOT NULL DEFAULT 0;
CREATE INDEX suppression_outbox_verify ON suppression_outbox (destination, verify_due_at)
    WHERE status = 'sent' AND verify_due_at IS NOT NULL;

-- What happened to a suppression at its destination after the push, with
-- the provider's answer (addresses masked): verified, mismatch (a read-back
-- said no: re-pushed), unverified (the provider could not say, given up),
-- drift (a drift check found it missing: re-pushed by drift -repair or the
-- periodic job). Shown in the subject's history beside the ledger entry
-- the row honours.
CREATE TABLE destination_events (
    id        bigserial PRIMARY KEY,
    outbox_id bigint      NOT NULL REFERENCES suppression_outbox (id),
    kind      text        NOT NULL CHECK (kind IN ('verified', 'mismatch', 'unverified', 'drift')),
    receipt   text,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX destination_events_outbox ON destination_events (outbox_id);

-- +goose Down
DROP TABLE destination_events;
DROP INDEX suppression_outbox_verify;
ALTER TABLE suppression_outbox DROP COLUMN verify_due_at, DROP COLUMN verified_at, DROP COLUMN verify_attempts,
    DROP COLUMN verify_receipt, DROP COLUMN mismatches;
