package worker

import (
	"context"
	"time"

	"github.com/consentsync/consentsync/store"
)

// Ledger is what reconciliation needs of Postgres (store.Store): the
// identity hash key and one transaction per batch.
type Ledger interface {
	IdentityKey(ctx context.Context) ([]byte, error)
	Tx(ctx context.Context, fn func(tx *store.Tx) error) error
}

// Store is what the worker's handlers and sweeper need of Postgres
// (store.Store).
type Store interface {
	Ledger
	GetInbound(ctx context.Context, id int64) (*store.Inbound, error)
	RecordInboundAttempt(ctx context.Context, id int64, cause string, final bool) error
	UnfinishedInbound(ctx context.Context, age time.Duration, limit int) ([]int64, error)
	ClaimPush(ctx context.Context, destination string, limit int, lease time.Duration, openAfter int) (store.Claim, error)
	CompleteOutbox(ctx context.Context, done []store.OutboxDone, call ...store.PushCall) error
	DueOutboxDestinations(ctx context.Context, age time.Duration) ([]string, error)
	ClaimVerify(ctx context.Context, destination string, limit int, lease time.Duration) ([]store.OutboxRow, error)
	CompleteVerify(ctx context.Context, done []store.VerifyDone) ([]int64, error)
	Honoured(ctx context.Context, eventIDs []int64) (map[int64]time.Time, error)
	HeldSuppressions(ctx context.Context, destination string, afterID int64, limit int) ([]store.OutboxRow, error)
	MaxOutboxID(ctx context.Context, destination string) (int64, error)
	NextDue(ctx context.Context, destination string) (time.Time, bool, error)
	TryPusher(ctx context.Context, destination, token string, ttl time.Duration) (bool, error)
	ReleasePusher(ctx context.Context, destination, token string) error
	RecordDrift(ctx context.Context, ids []int64, receipts []string, repair bool) (int, error)
	WithLock(ctx context.Context, key int64, fn func(ctx context.Context) error) (bool, error)
	CatchUpState(ctx context.Context, destination string) (store.CatchUpState, bool, error)
	LedgerHigh(ctx context.Context) (int64, error)
	WithdrewSince(ctx context.Context, q store.CatchUpQuery, fromEvent, toEvent, afterSubject int64, limit int) ([]int64, error)
}

var _ Store = (*store.Store)(nil)
