-- +goose Up

-- Which destinations have caught up on the standing withdrawals made before
-- they were configured (worker.CatchUp): one row per destination, for the
-- route (brand, channels, purposes) it last caught up with. A destination
-- whose route hash differs (new, or its purposes or channels changed)
-- catches up again. after_subject_id is how far a run got (subject ids are
-- read in ascending order), so an interrupted run resumes; done_at is set
-- when it reached the end. ledger_high is the newest ledger row when the
-- run started: later starts catch up on the withdrawals after it (made by
-- processes still running an older configuration) and move it on.
CREATE TABLE destination_catch_up (
    destination      text PRIMARY KEY,
    route_hash       text        NOT NULL,
    after_subject_id bigint      NOT NULL DEFAULT 0,
    queued           bigint      NOT NULL DEFAULT 0,
    ledger_high      bigint      NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL DEFAULT now(),
    done_at          timestamptz
);

-- +goose Down
DROP TABLE destination_catch_up;
