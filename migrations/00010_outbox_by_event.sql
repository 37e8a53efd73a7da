-- +goose NO TRANSACTION
-- +goose Up

-- The suppressions of one withdrawal (ledger row): store.CompleteVerify
-- asks, for each row it settles, whether every other row of its
-- withdrawal is settled too (the withdrawal is then honoured everywhere:
-- consentsync_withdrawal_honoured_seconds), and store.Honoured and
-- `consentsync overdue` ask the same. The unique key leads with the
-- destination, so without this index each question was a scan of the
-- whole outbox. CONCURRENTLY: a large outbox keeps taking writes while it
-- builds. An interrupted CONCURRENTLY build leaves an INVALID index of that
-- name, which IF NOT EXISTS would keep (never used by the planner), so a
-- re-run drops whatever is there and builds it again.
DROP INDEX CONCURRENTLY IF EXISTS suppression_outbox_event;
CREATE INDEX CONCURRENTLY suppression_outbox_event ON suppression_outbox (consent_event_id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS suppression_outbox_event;
