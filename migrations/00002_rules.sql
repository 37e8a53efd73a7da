-- +goose Up

-- Who the subject is: a work address (subject-level), erased or not.
ALTER TABLE subjects
    ADD COLUMN professional boolean     NOT NULL DEFAULT false,
    ADD COLUMN erased_at    timestamptz,
    -- one key for every alias of a mailbox (Gmail ignores dots and +tags):
    -- a withdrawal by one alias blocks them all
    ADD COLUMN mailbox_key  text;
CREATE INDEX subjects_mailbox_key ON subjects (mailbox_key);
ALTER TABLE subjects DROP CONSTRAINT subjects_check;
ALTER TABLE subjects ADD CONSTRAINT subjects_identified
    CHECK (email IS NOT NULL OR phone IS NOT NULL OR erased_at IS NOT NULL);

-- Customer of a brand (soft opt-in), since when, said by which source.
CREATE TABLE subject_profiles (
    subject_id bigint      NOT NULL REFERENCES subjects (id),
    brand      text        NOT NULL,
    profile    text        NOT NULL CHECK (profile IN ('customer', 'professional')),
    since      timestamptz NOT NULL,
    source     text        NOT NULL,
    PRIMARY KEY (subject_id, brand, profile)
);

-- Contacts per subject, brand and kind: first and last time seen. Qualifying
-- kinds (click, reply, order, form) renew consent; delivered dates messages.
CREATE TABLE subject_contacts (
    subject_id bigint      NOT NULL REFERENCES subjects (id),
    brand      text        NOT NULL,
    channel    text        NOT NULL,
    kind       text        NOT NULL,
    first_at   timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    PRIMARY KEY (subject_id, brand, channel, kind)
);

-- Sender-side ids seen for a subject (HubSpot contact ids), so a later
-- privacy deletion naming only the id finds the subject.
CREATE TABLE subject_external_ids (
    source      text   NOT NULL,
    external_id text   NOT NULL,
    subject_id  bigint NOT NULL REFERENCES subjects (id),
    PRIMARY KEY (source, external_id)
);

-- Keyed hashes of erased identifiers: the person stays suppressed, and a
-- re-import of the old address does not resurrect consent.
CREATE TABLE erased_identities (
    identity_hash bytea PRIMARY KEY,
    subject_id    bigint      NOT NULL REFERENCES subjects (id),
    erased_at     timestamptz NOT NULL
);

-- Subjects that are one person seen by two identifiers (an address and the
-- number given with it): an erasure of one erases the other.
CREATE TABLE subject_links (
    subject_id        bigint NOT NULL REFERENCES subjects (id),
    linked_subject_id bigint NOT NULL REFERENCES subjects (id),
    PRIMARY KEY (subject_id, linked_subject_id)
);

-- Which inbound requests named which subject (signals, contacts, profiles):
-- an erasure deletes the raw bodies of all of them.
CREATE TABLE subject_inbound (
    subject_id       bigint NOT NULL REFERENCES subjects (id),
    inbound_event_id bigint NOT NULL REFERENCES inbound_events (id),
    PRIMARY KEY (subject_id, inbound_event_id)
);

-- Settings the service keeps for itself (the identity hash key).
CREATE TABLE service_settings (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);

-- The six criteria of each grant, as assessed when it was recorded.
ALTER TABLE consent_events ADD COLUMN quality jsonb;

CREATE INDEX consent_events_subject_key ON consent_events (subject_id, channel, brand, purpose, occurred_at);

-- Tighter append-only guard: an erasure may only empty a row's evidence;
-- nothing may delete rows or truncate the table.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION consent_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('consentsync.erasure', true) = 'on'
       AND NEW.evidence = '{}'::jsonb
       AND (NEW.id, NEW.subject_id, NEW.inbound_event_id, NEW.dedup_key, NEW.channel, NEW.brand, NEW.purpose,
            NEW.status, NEW.occurred_at, NEW.received_at, NEW.source, NEW.valid, NEW.problems, NEW.outcome,
            NEW.evidence_hash, NEW.prev_hash, NEW.hash, NEW.quality)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.subject_id, OLD.inbound_event_id, OLD.dedup_key, OLD.channel, OLD.brand, OLD.purpose,
            OLD.status, OLD.occurred_at, OLD.received_at, OLD.source, OLD.valid, OLD.problems, OLD.outcome,
            OLD.evidence_hash, OLD.prev_hash, OLD.hash, OLD.quality) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'consent_events is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER consent_events_no_truncate BEFORE TRUNCATE ON consent_events
    FOR EACH STATEMENT EXECUTE FUNCTION consent_events_append_only();

-- +goose Down
DROP TRIGGER consent_events_no_truncate ON consent_events;
DROP TABLE subject_inbound;
DROP TABLE subject_links;
DROP INDEX consent_events_subject_key;
ALTER TABLE consent_events DROP COLUMN quality;
DROP TABLE service_settings;
DROP TABLE erased_identities;
DROP TABLE subject_external_ids;
DROP TABLE subject_contacts;
DROP TABLE subject_profiles;
ALTER TABLE subjects DROP CONSTRAINT subjects_identified;
ALTER TABLE subjects ADD CONSTRAINT subjects_check CHECK (email IS NOT NULL OR phone IS NOT NULL);
DROP INDEX subjects_mailbox_key;
ALTER TABLE subjects DROP COLUMN erased_at, DROP COLUMN professional, DROP COLUMN mailbox_key;
