-- +goose Up

-- Pending lifts by destination and target subject: store.ClaimPush keeps
-- a newer row of a scope behind an older pending lift of that scope
-- (a retried lift must never land after a newer withdrawal). Lifts are
-- rare, so the index stays small and the claim's anti-join cheap however
-- large a backlog of suppressions grows.
CREATE INDEX suppression_outbox_pending_lifts ON suppression_outbox (destination, target_subject_id)
    WHERE status = 'pending' AND action = 'lift';

-- One push task at a time per destination (store.TryPusher): the task
-- holding the lease until pusher_until schedules the destination's next
-- one; others leave at once, so a destination's tasks never multiply.
ALTER TABLE destination_status ADD COLUMN pusher text, ADD COLUMN pusher_until timestamptz;

-- +goose Down
ALTER TABLE destination_status DROP COLUMN pusher, DROP COLUMN pusher_until;
DROP INDEX suppression_outbox_pending_lifts;
