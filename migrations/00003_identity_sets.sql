-- +goose Up

-- A withdrawal is pushed for every literal address of the person's identity
-- set (the address that withdrew, its mailbox aliases, the numbers linked to
-- it): one outbox row per destination, ledger row and target subject, the
-- subject whose address or number the row carries. No personal data in the
-- key, so it still holds once an erasure has removed the address.
ALTER TABLE suppression_outbox ADD COLUMN target_subject_id bigint REFERENCES subjects (id);
UPDATE suppression_outbox SET target_subject_id = subject_id;
ALTER TABLE suppression_outbox ALTER COLUMN target_subject_id SET NOT NULL;
ALTER TABLE suppression_outbox DROP CONSTRAINT suppression_outbox_destination_consent_event_id_key;
ALTER TABLE suppression_outbox ADD CONSTRAINT suppression_outbox_target_key
    UNIQUE (destination, consent_event_id, target_subject_id);
CREATE INDEX suppression_outbox_target ON suppression_outbox (target_subject_id);

-- Which inbound requests named which identity, by keyed hash (the same
-- HMAC as erased_identities): every request naming a person — signals,
-- bounces, profile updates, refused re-imports — is found and emptied by an
-- erasure, whether or not it produced a subject.
CREATE TABLE inbound_identities (
    identity_hash    bytea  NOT NULL,
    inbound_event_id bigint NOT NULL REFERENCES inbound_events (id),
    PRIMARY KEY (identity_hash, inbound_event_id)
);

-- +goose Down
DROP TABLE inbound_identities;
DROP INDEX suppression_outbox_target;
ALTER TABLE suppression_outbox DROP CONSTRAINT suppression_outbox_target_key;
ALTER TABLE suppression_outbox ADD CONSTRAINT suppression_outbox_destination_consent_event_id_key
    UNIQUE (destination, consent_event_id);
ALTER TABLE suppression_outbox DROP COLUMN target_subject_id;
