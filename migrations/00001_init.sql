-- +goose Up

-- Inbox: every webhook request exactly as received, committed before the
-- sender gets its 2xx. Redis holds work; this table is the record.
CREATE TABLE inbound_events (
    id           bigserial PRIMARY KEY,
    source       text        NOT NULL,
    kind         text        NOT NULL,
    -- sender's event id or a stable hash of the delivery (connectors.Batch.DedupKey)
    dedup_key    text        NOT NULL,
    method       text        NOT NULL,
    path         text        NOT NULL,
    -- query string with secret-bearing parameters removed
    query        text        NOT NULL DEFAULT '',
    -- headers worth keeping (content type, signature timestamps, sender ids)
    headers      jsonb       NOT NULL DEFAULT '{}',
    body         bytea,
    body_sha256  bytea       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- received -> processed | failed
    status       text        NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'processed', 'failed')),
    attempts     int         NOT NULL DEFAULT 0,
    error        text,
    -- what the batch held that carried no consent change (skipped items, undeliverable count)
    notes        jsonb,
    processed_at timestamptz,
    UNIQUE (source, dedup_key)
);
CREATE INDEX inbound_events_unfinished ON inbound_events (received_at) WHERE status = 'received';

-- Subjects: one person (or role address), found by normalized email or E.164 phone.
CREATE TABLE subjects (
    id             bigserial PRIMARY KEY,
    email          text UNIQUE,
    email_original text,
    phone          text UNIQUE,
    profile        text        NOT NULL DEFAULT 'prospect',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (email IS NOT NULL OR phone IS NOT NULL)
);

-- Ledger: append-only, one row per signal received, hash-chained per subject
-- (hash = sha256(prev_hash || canonical row)), so tampering shows.
CREATE TABLE consent_events (
    id               bigserial PRIMARY KEY,
    subject_id       bigint      NOT NULL REFERENCES subjects (id),
    inbound_event_id bigint      REFERENCES inbound_events (id),
    -- sha256 of (source, subject, channel, brand, purpose, status, occurred_at):
    -- the same fact delivered twice is one row
    dedup_key        bytea       NOT NULL,
    channel          text        NOT NULL,
    brand            text        NOT NULL,
    purpose          text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('granted', 'withdrawn', 'pending')),
    occurred_at      timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    source           text        NOT NULL,
    valid            boolean     NOT NULL,
    problems         jsonb       NOT NULL DEFAULT '[]',
    -- applied | stale | invalid | unchanged (consent.Outcome.Reason)
    outcome          text        NOT NULL,
    -- how the signal came to be (proof); erasure empties it, evidence_hash stays
    evidence         jsonb       NOT NULL DEFAULT '{}',
    evidence_hash    bytea       NOT NULL,
    prev_hash        bytea,
    hash             bytea       NOT NULL,
    UNIQUE (source, dedup_key)
);
CREATE INDEX consent_events_subject ON consent_events (subject_id, id);

-- The ledger is append-only: rows cannot be changed or removed, except by an
-- erasure that sets consentsync.erasure for its own transaction.
-- +goose StatementBegin
CREATE FUNCTION consent_events_append_only() RETURNS trigger AS $$
BEGIN
    IF current_setting('consentsync.erasure', true) = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'consent_events is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER consent_events_append_only BEFORE UPDATE OR DELETE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION consent_events_append_only();

-- Current state per (subject, channel, brand, purpose): the winning signal.
CREATE TABLE consent_states (
    subject_id  bigint      NOT NULL REFERENCES subjects (id),
    channel     text        NOT NULL,
    brand       text        NOT NULL,
    purpose     text        NOT NULL,
    status      text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    source      text        NOT NULL,
    event_id    bigint      NOT NULL REFERENCES consent_events (id),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject_id, channel, brand, purpose)
);

-- Outbox: one row per (destination, withdrawal) to push; the provider's answer
-- is kept as the suppression receipt.
CREATE TABLE suppression_outbox (
    id               bigserial PRIMARY KEY,
    destination      text        NOT NULL,
    consent_event_id bigint      NOT NULL REFERENCES consent_events (id),
    subject_id       bigint      NOT NULL REFERENCES subjects (id),
    action           text        NOT NULL DEFAULT 'suppress',
    email            text,
    phone            text,
    channel          text        NOT NULL,
    brand            text        NOT NULL,
    purpose          text        NOT NULL,
    reason           text,
    -- pending -> sent | failed
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         int         NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    last_error       text,
    receipt          text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    UNIQUE (destination, consent_event_id)
);
CREATE INDEX suppression_outbox_pending ON suppression_outbox (destination, next_attempt_at) WHERE status = 'pending';
CREATE INDEX suppression_outbox_subject ON suppression_outbox (subject_id);

-- +goose Down
DROP TRIGGER consent_events_append_only ON consent_events;
DROP FUNCTION consent_events_append_only();
DROP TABLE suppression_outbox;
DROP TABLE consent_states;
DROP TABLE consent_events;
DROP TABLE subjects;
DROP TABLE inbound_events;
