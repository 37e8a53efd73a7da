-- +goose Up

-- Backfills (`consentsync import`, docs/design.md §"Backfill"): one row per
-- run. A provider import persists the provider's cursor of the next page to
-- read after each page is committed to the inbox, so an interrupted run
-- resumes where it stopped (the unfinished run of the same destination is
-- continued). Imported pages themselves are inbox rows of kind 'import',
-- deduplicated by (source, dedup_key) like webhooks.
CREATE TABLE import_runs (
    id           bigserial PRIMARY KEY,
    -- provider | csv
    kind         text        NOT NULL CHECK (kind IN ('provider', 'csv')),
    -- the destination read (provider) or the -source named (csv)
    name         text        NOT NULL,
    -- running -> done | failed
    status       text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    -- the provider's cursor of the next page to read ('' = the first page)
    cursor       text        NOT NULL DEFAULT '',
    pages        bigint      NOT NULL DEFAULT 0,
    items        bigint      NOT NULL DEFAULT 0,
    -- inbox rows written / already there (duplicates)
    inbox_rows   bigint      NOT NULL DEFAULT 0,
    duplicates   bigint      NOT NULL DEFAULT 0,
    rejected     bigint      NOT NULL DEFAULT 0,
    error        text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
-- at most one running run per destination: the one a new run resumes
CREATE UNIQUE INDEX import_runs_running ON import_runs (kind, name) WHERE status = 'running';

-- +goose Down
DROP TABLE import_runs;
