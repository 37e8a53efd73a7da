package connectors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/consentsync/consentsync/consent"
)

// Suppression is one outbox row to push: tell the destination that Email (as
// the sender spelled it) must no longer receive Purpose messages of Brand on
// Channel.
type Suppression struct {
	// ID is the outbox row id; Results refer to it.
	ID      int64
	Email   string
	Phone   string
	Channel consent.Channel
	Brand   string
	Purpose consent.Purpose
	// Reason is the sender's event that caused the withdrawal
	// ("unsubscribe", "spamreport"), for providers that record one.
	Reason string
	// SentAt is when the row was last pushed and accepted (the outbox
	// row's sent_at), for a Checker whose provider applies suppressions
	// asynchronously (Postmark, Klaviyo): a read-back that does not find
	// the suppression yet, within the provider's settle time of SentAt, is
	// Unknown (asked again later), not a mismatch (see Settling). Zero when
	// unknown: the read-back is then taken as final.
	SentAt time.Time
}

// Settling reports whether s was pushed less than settle before now, so
// that a provider that applies suppressions asynchronously may not show it
// yet. It is false when s.SentAt is zero (unknown) or in the future by
// more than settle (a clock gone wrong: the read-back is taken as final).
func Settling(s Suppression, now time.Time, settle time.Duration) bool {
	if s.SentAt.IsZero() {
		return false
	}
	age := now.Sub(s.SentAt)
	return age < settle && age > -settle
}

// Result is the outcome of one suppression inside a Push.
type Result struct {
	ID int64
	// Err is nil when the provider accepted the suppression (or already had
	// it). A per-item refusal wraps ErrPermanent.
	Err error
	// Receipt is the provider's answer for this item, at most ReceiptMax
	// bytes, with no credential in it.
	Receipt string
}

// ReceiptMax bounds a receipt or an error body snippet kept in the outbox.
const ReceiptMax = 512

// Destination pushes suppressions to one provider account.
//
// Push sends at most MaxBatch() suppressions and returns one Result per
// suppression, in any order. A Result whose Err does not wrap ErrPermanent
// is transient: that row is tried again later (e.g. the items a Push could
// not reach before ctx ended, see Unfinished, while the others' Results
// are final). A returned error means the call as a whole failed and no
// Result is final: a *RetryAfterError (retry after its
// Delay), an error wrapping ErrPermanent (never retry), or any other error
// (transient: retry with backoff). Push must be safe to repeat: every
// provider call it makes is idempotent. Errors and receipts never contain the
// API key or a URL that carries it.
type Destination interface {
	Push(ctx context.Context, batch []Suppression) ([]Result, error)
	MaxBatch() int
}

// RetryAfterError is a transient failure with the delay the provider asked
// for (Retry-After, X-RateLimit-Reset, ...). asynq's RetryDelayFunc reads it
// to reschedule the task instead of sleeping (convoy's pattern).
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.Delay.Round(time.Millisecond), e.Err)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryDelay returns the delay carried by a *RetryAfterError in err's
// chain, bounded like a server's (BoundWait): a connector's own wait holds
// a destination no longer than a provider's headers can.
func RetryDelay(err error) (time.Duration, bool) {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return BoundWait(ra.Delay), true
	}
	return 0, false
}

// Permanent wraps ErrPermanent with a reason.
func Permanent(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPermanent, fmt.Sprintf(format, args...))
}

// Status is what a destination reports, on reading back, for one
// suppression.
type Status struct {
	ID int64
	// Suppressed is true when the provider holds the address suppressed
	// for the suppression's scope (the whole account, the list, the stream,
	// the subscription type...).
	Suppressed bool
	// Unknown is true when the provider cannot say (no such contact, or a
	// job it has not finished): neither verified nor drifted.
	Unknown bool
	// Receipt is the provider's answer for this item, at most ReceiptMax
	// bytes, with no credential in it.
	Receipt string
}

// Checker is a destination that can read back what it holds (read-back
// verification after a push, and drift detection).
//
// Check asks about at most MaxBatch() suppressions and returns one Status
// per suppression, in any order. Its error follows Push's conventions
// (*RetryAfterError, ErrPermanent, transient). Check never changes the
// provider's state.
type Checker interface {
	Check(ctx context.Context, batch []Suppression) ([]Status, error)
}

// ErrLiftRefused marks a lift the provider does not allow (Mailchimp's
// compliance state, Postmark's spam complaints): the person must opt in
// again through the provider's own form.
var ErrLiftRefused = errors.New("the provider does not allow lifting this suppression")

// Lifter is a destination that can lift a suppression after a new valid
// express opt-in (config destinations[].lift: on_new_opt_in).
//
// Lift lifts at most MaxBatch() suppressions and returns one Result per
// suppression; a Result whose Err wraps ErrLiftRefused is final and is
// shown to the person ("re-opt-in through the provider's own form"). Its
// error follows Push's conventions. Lift must be safe to repeat.
type Lifter interface {
	Lift(ctx context.Context, batch []Suppression) ([]Result, error)
}

// CallCounter is implemented by a destination whose Push (or Lift) of n
// suppressions makes more than one HTTP request (one per address, say):
// PushCalls(n) bounds them. The worker gives the call its timeout plus the
// time the destination's rate limit needs for that many requests, and
// leases the rows that long. Without it a Push is one batch request.
type CallCounter interface {
	PushCalls(n int) int
}

// Listed is one suppression a provider already holds, as a backfill
// (`consentsync import provider`) reads it: the address (or number) the
// provider keeps, when the provider recorded it and why.
type Listed struct {
	Email string
	Phone string
	// At is the provider's own date of the suppression or unsubscribe
	// (zero when the provider gives none).
	At time.Time
	// Reason is the provider's status or reason, kept as the signal's
	// Evidence.Event: "global_unsubscribe", "unsubscribed", "cleaned",
	// "blocklisted", "ManualSuppression", "opted_out"...
	Reason string
	// Purpose narrows the withdrawal to one purpose (a SendGrid group, a
	// HubSpot subscription type mapped to one); empty means every purpose
	// the destination honours (config destinations[].purposes).
	Purpose consent.Purpose
}

// Lister is a destination whose provider can list the suppressions it
// already holds, page by page, for a backfill.
//
// List reads the page at cursor ("" is the first page) and returns its
// items and the cursor of the next page ("" after the last page). A cursor
// is opaque to the caller, which persists it between pages so that an
// interrupted backfill resumes where it stopped: it must stay valid across
// processes (an offset, a provider's page token, a URL path without the
// key). List follows the provider's own pagination (offset/limit, page
// tokens, "after" cursors) and page-size limits; its errors follow Push's
// conventions (*RetryAfterError for a 429 with the provider's reset time,
// ErrPermanent for a refusal such as a bad key, otherwise transient). List
// never changes the provider's state, and neither cursors nor errors carry
// the API key.
type Lister interface {
	List(ctx context.Context, cursor string) (page []Listed, next string, err error)
}
