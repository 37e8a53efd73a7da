-- +goose Up

-- Tracing (docs/design.md §9): the W3C traceparent of the span that
-- received the webhook (https://www.w3.org/TR/trace-context/), so whichever
-- batch reconciles the row (its own task, another row's task, the claimer)
-- continues the webhook's trace. NULL when tracing was off. It names no
-- person: two random ids and a flag byte.
ALTER TABLE inbound_events ADD COLUMN traceparent text;

-- +goose Down
ALTER TABLE inbound_events DROP COLUMN traceparent;
