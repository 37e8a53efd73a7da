-- +goose Up

-- Pending lifts by destination and target subject: store.ClaimPush keeps
-- a newer row of a scope behind an older pending lift of that scope
-- (a retried lift must never land after a newer withdrawal). Lifts are
-- rare, so the index stays small and the claim's anti-join cheap however
-- large a backlog of suppressions grows.
CREATE INDEX suppression_outbox_pending_lifts ON suppression_outbox (destination, target_subject_id)
    WHERE status = 'pending' AND action = 'lift';

-- +goose Down
DROP INDEX suppression_outbox_pending_lifts;
