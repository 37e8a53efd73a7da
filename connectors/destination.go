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
// suppression, in any order. A returned error means the call as a whole
// failed and no Result is final: a *RetryAfterError (retry after its
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

// RetryDelay returns the delay carried by a *RetryAfterError in err's chain.
func RetryDelay(err error) (time.Duration, bool) {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return ra.Delay, true
	}
	return 0, false
}

// Permanent wraps ErrPermanent with a reason.
func Permanent(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPermanent, fmt.Sprintf(format, args...))
}
