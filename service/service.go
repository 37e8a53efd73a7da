// Package service is consentsync's one answer: every view of a person —
// the admin API, every CLI command, the demo — is a use case here, one per
// file, over one loader (store.People) and the rules of package consent.
// Handlers and commands parse their input, call a use case and render its
// result; none of them loads facts, applies policy or decides on its own.
//
// A person is an identity set (store.Person): the literal addresses seen
// for them, their mailbox aliases and the numbers linked to them. Every use
// case answers the same for any member.
package service

import (
	"context"
	"errors"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// Errors use cases return; callers branch on them with errors.Is.
var (
	// ErrInvalidIdentifier: the input is neither an email address nor a
	// phone number (HTTP 400).
	ErrInvalidIdentifier = errors.New("not an email address or a phone number")
	// ErrUnknownSubject: no live subject and no erased identity matches
	// (HTTP 404).
	ErrUnknownSubject = errors.New("unknown subject")
	// ErrBadQuestion: an eligibility question names an unknown channel or
	// purpose, or a brand the configuration does not name (HTTP 400).
	ErrBadQuestion = errors.New("bad question")
	// ErrUnknownDestination: a destination name the configuration lacks.
	ErrUnknownDestination = errors.New("unknown destination")
	// ErrNoEraser: erasure needs the worker's reconciliation (HTTP 503).
	ErrNoEraser = errors.New("erasure needs the worker configuration")
	// ErrNoQueue: replay and repush need the queue (Redis).
	ErrNoQueue = errors.New("this needs the queue (REDIS_URL)")
)

// PeopleLoader loads identity sets and their members' facts
// (store.Store.People).
type PeopleLoader interface {
	People(ctx context.Context, ids []store.Identifier, key *consent.Key) ([]store.Person, error)
}

// RecordReader reads a person's ledger rows and suppression receipts.
type RecordReader interface {
	LedgerOf(ctx context.Context, subjectIDs []int64) ([]store.LedgerRow, error)
	ReceiptsOf(ctx context.Context, subjectIDs []int64) ([]store.Receipt, error)
	ListOverdue(ctx context.Context, before time.Time, limit int) ([]store.Overdue, error)
}

// Eraser carries out an erasure in one transaction with its suppressions
// (worker.Worker.Erase). It returns store.ErrNotFound when there is
// nothing left to erase.
type Eraser interface {
	Erase(ctx context.Context, subjectID int64, source string) error
}

// Store is what the use cases need of Postgres.
type Store interface {
	PeopleLoader
	RecordReader
	ReplayInbound(ctx context.Context, ids []int64, from, to time.Time) (store.Replayed, error)
	RequeueFailed(ctx context.Context, destination string, ids []int64) (map[string]int, error)
	ExpiringCandidates(ctx context.Context, afterID int64, limit int) ([]store.Identifier, int64, error)
	VerifyLedger(ctx context.Context, report func(store.Break)) (int, []byte, error)
	LiveIdentifiers(ctx context.Context) ([]store.Identifier, error)
	SubjectIdentifier(ctx context.Context, id int64) (store.Identifier, error)
	FailedWebhooks(ctx context.Context, limit int) ([]store.FailedWebhook, int64, error)
	FailedSuppressions(ctx context.Context, destination string, limit int) ([]store.OutboxRow, int64, error)
}

// Queue enqueues work (jobs.Requeuer): the inbound task of a stored
// request, after dropping any leftover task with its id, and a push of a
// destination's due suppressions.
type Queue interface {
	Inbound(ctx context.Context, id int64) error
	Push(ctx context.Context, destination string) error
}

// Service runs the use cases.
type Service struct {
	Store Store
	Queue Queue // replay and repush; nil in read-only commands
	// Archive lists and takes archived tasks (deadletters, repush of a
	// task); nil without Redis.
	Archive Archive
	Eraser  Eraser // erase; nil where erasure is not wired
	Config  *config.Config
	// Now is the clock every answer is given at (time.Now when nil).
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// policy is the rules' view of the configuration.
func (s *Service) policy() consent.Policy { return s.Config.Policy.Rules() }
