package worker

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// Route says which destination must hear a withdrawal: the destination's
// brand, channels and purposes. Routes come from config.Destinations.
type Route struct {
	Destination string
	Brand       string
	Channels    []consent.Channel
	Purposes    []consent.Purpose
	// Lift: a new valid express opt-in lifts the suppression here
	// (destinations[].lift: on_new_opt_in).
	Lift bool
}

// RoutesFrom builds the routes of the configured destinations.
func RoutesFrom(ds []config.Destination) []Route {
	out := make([]Route, 0, len(ds))
	for _, d := range ds {
		r := Route{Destination: d.Name, Brand: d.Brand, Lift: d.Lift == "on_new_opt_in"}
		for _, c := range d.Channels {
			r.Channels = append(r.Channels, consent.Channel(c))
		}
		for _, p := range d.Purposes {
			r.Purposes = append(r.Purposes, consent.Purpose(p))
		}
		out = append(out, r)
	}
	return out
}

// Covers reports whether r's destination could send what sig withdraws:
// same brand, a channel and purpose r sends on.
func (r Route) Covers(sig consent.Signal) bool {
	return r.Brand == sig.Brand && slices.Contains(r.Channels, sig.Channel) && slices.Contains(r.Purposes, sig.Purpose)
}

// Matches reports whether a withdrawal described by sig must be pushed to
// r for the address that withdrew: r covers it and is not the destination
// the withdrawal came from (echo: a provider's own unsubscribe webhook is
// never pushed back to it for the same address). The person's other
// addresses are pushed to every covering destination, the source included:
// it still holds them.
func (r Route) Matches(sig consent.Signal) bool {
	return r.Covers(sig) && r.Destination != sig.Source
}

// Prepared is a batch ready to reconcile: identifiers normalized, items
// that cannot be stored left out with a note.
type Prepared struct {
	Signals    []consent.Signal
	Activities []consent.Activity
	Profiles   []consent.ProfileFact
	// Erasures name subjects by the sender's id (Subject.ExternalID, with
	// the source in ErasureSource) or by identifier.
	Erasures      []consent.Subject
	ErasureSource string
	// Links pair an address with the number given with it in one signal:
	// one person, whose SMS consent lives on the number's subject.
	Links []consent.Subject
	// Named lists every identifier the request named, whatever became of
	// it (bounces, refused re-imports included): an erasure finds and
	// empties every stored request naming the person.
	Named []consent.Subject
	Notes Notes
}

// Notes is stored on the inbox row (JSON): what the request held besides
// applied signals. No addresses: counts and positions only.
type Notes struct {
	Signals       int      `json:"signals"`
	Applied       int      `json:"applied"`
	Stale         int      `json:"stale,omitempty"`
	Invalid       int      `json:"invalid,omitempty"`
	Duplicate     int      `json:"duplicate,omitempty"`
	Suppressions  int      `json:"suppressions,omitempty"`
	Activities    int      `json:"activities,omitempty"`
	Profiles      int      `json:"profiles,omitempty"`
	Undeliverable int      `json:"undeliverable,omitempty"`
	Erasures      int      `json:"erasures,omitempty"`
	Skipped       []string `json:"skipped,omitempty"`
	// Granted, Withdrawn and Pending count the signals reconciled by the
	// consent status they carry, whatever their outcome (metrics only).
	Granted, Withdrawn, Pending int `json:"-"`
}

// Prepare normalizes signals alone, received at receivedAt (see
// PrepareBatch).
func Prepare(signals []consent.Signal, region string, receivedAt time.Time) Prepared {
	return PrepareBatch(&connectors.Batch{Signals: signals}, PrepareOptions{Region: region, ReceivedAt: receivedAt})
}

// PrepareOptions say how a source's batch is read.
type PrepareOptions struct {
	// Source is the configured source name (erasure requests name it).
	Source string
	// Region reads national phone numbers (ISO 3166-1 alpha-2).
	Region string
	// ReceivedAt is the request's arrival: no sender time may be later.
	ReceivedAt time.Time
	// Scope is the source's withdrawal scope (config sources[].withdrawal_scope):
	// consent.ScopeAllBrands applies each of its withdrawals to every brand.
	Scope consent.Scope
	// Brands are the configured brands an all-brands withdrawal covers.
	Brands []string
}

// notAfter bounds *t by the arrival time (consent.BoundByArrival) and
// reports whether it moved.
func notAfter(t *time.Time, received time.Time) bool {
	var moved bool
	*t, moved = consent.BoundByArrival(*t, received)
	return moved
}

// PrepareBatch normalizes every subject of a parsed batch
// (consent.NormalizeSubject), puts times at the ledger's precision, makes
// sender-controlled text storable, and leaves out, with a note, items that
// cannot be stored (no usable identifier, unknown channel). Times later
// than the arrival are brought back to it (consent.BoundByArrival). SMS and
// call consent goes to the number (consent.ConsentSubject); an all-brands
// withdrawal becomes one per brand (consent.ExpandScope). Signals are
// ordered by subject key, then occurrence.
func PrepareBatch(b *connectors.Batch, o PrepareOptions) Prepared {
	source, region, receivedAt := o.Source, o.Region, o.ReceivedAt
	p := Prepared{ErasureSource: source}
	for _, raw := range b.Undeliverable {
		if e, orig, err := consent.NormalizeEmail(raw); err == nil {
			p.Named = append(p.Named, consent.Subject{Email: e, EmailOriginal: orig})
		} else if !strings.Contains(raw, "@") {
			// A number reported invalid (Shopify's SMS state "invalid") is
			// named too, so that its erasure finds this request.
			if n, err := consent.NormalizePhone(raw, region); err == nil {
				p.Named = append(p.Named, consent.Subject{Phone: n})
			}
		}
	}
	p.Notes.Skipped = append(p.Notes.Skipped, b.Skipped...)
	skip := func(what string, i int, err error) {
		p.Notes.Skipped = append(p.Notes.Skipped, fmt.Sprintf("%s %d: %v", what, i, err))
	}
	for i, s := range b.Signals {
		sub, err := consent.NormalizeSubject(s.Subject, region)
		if err != nil {
			skip("signal", i, err)
			continue
		}
		p.Named = append(p.Named, sub)
		s = s.Clean()
		s.Subject = sub
		owner, link := consent.ConsentSubject(s)
		if link != nil {
			p.Links = append(p.Links, *link)
		}
		s.Subject = owner
		if s.OccurredAt.IsZero() && !receivedAt.IsZero() {
			s.OccurredAt = receivedAt
			p.Notes.Skipped = append(p.Notes.Skipped, fmt.Sprintf("signal %d: no readable occurred_at, arrival time used", i))
		}
		s.OccurredAt = consent.CanonicalTime(s.OccurredAt)
		if notAfter(&s.OccurredAt, receivedAt) {
			p.Notes.Skipped = append(p.Notes.Skipped, fmt.Sprintf("signal %d: occurred_at later than its arrival, set to the arrival time", i))
		}
		if s.Evidence.ConfirmedAt != nil {
			t := consent.CanonicalTime(*s.Evidence.ConfirmedAt)
			notAfter(&t, receivedAt)
			if y := t.Year(); y < consent.MinYear {
				s.Evidence.ConfirmedAt = nil
			} else {
				s.Evidence.ConfirmedAt = &t
			}
		}
		if err := s.Validate(); err != nil {
			skip("signal", i, err)
			continue
		}
		if o.Scope == consent.ScopeAllBrands && s.Status == consent.StatusWithdrawn {
			s.Scope = consent.ScopeAllBrands
		}
		p.Signals = append(p.Signals, consent.ExpandScope(s, o.Brands)...)
	}
	slices.SortStableFunc(p.Signals, func(a, b consent.Signal) int {
		return cmp.Or(cmp.Compare(a.Subject.Key(), b.Subject.Key()), a.OccurredAt.Compare(b.OccurredAt))
	})
	for i, a := range b.Activities {
		if err := prepareFact(&a.Subject, &a.OccurredAt, &a.Brand, &a.Source, region, receivedAt); err != nil {
			skip("activity", i, err)
			continue
		}
		p.Named = append(p.Named, a.Subject)
		p.Activities = append(p.Activities, a)
	}
	for i, f := range b.Profiles {
		if err := prepareFact(&f.Subject, &f.OccurredAt, &f.Brand, &f.Source, region, receivedAt); err != nil {
			skip("profile", i, err)
			continue
		}
		p.Named = append(p.Named, f.Subject)
		p.Profiles = append(p.Profiles, f)
	}
	for i, e := range b.Erasures {
		if e.ExternalID != "" && e.Email == "" && e.Phone == "" {
			p.Erasures = append(p.Erasures, e)
			continue
		}
		sub, err := consent.NormalizeSubject(e, region)
		if err != nil {
			skip("erasure", i, err)
			continue
		}
		p.Erasures = append(p.Erasures, sub)
		p.Named = append(p.Named, sub)
	}
	// What the request names without a fact about it, once each: the
	// facts above named the rest already.
	named := map[string]bool{}
	for _, n := range p.Named {
		named[n.Key()] = true
	}
	for _, s := range b.Named {
		sub, err := consent.NormalizeSubject(consent.Subject{Email: s.Email, Phone: s.Phone}, region)
		if err != nil || named[sub.Key()] {
			continue
		}
		named[sub.Key()] = true
		p.Named = append(p.Named, sub)
	}
	p.Notes.Signals = len(p.Signals)
	p.Notes.Undeliverable = len(b.Undeliverable)
	return p
}

// prepareFact readies a contact or profile fact like a signal: subject
// normalized, time defaulted to and bounded by the arrival, at the ledger's
// precision and within the accepted years, text made storable.
func prepareFact(sub *consent.Subject, at *time.Time, brand, source *string, region string, receivedAt time.Time) error {
	n, err := consent.NormalizeSubject(*sub, region)
	if err != nil {
		return err
	}
	if at.IsZero() {
		*at = receivedAt
	}
	*at = consent.CanonicalTime(*at)
	notAfter(at, receivedAt)
	if at.IsZero() || at.Year() < consent.MinYear {
		return consent.ErrNoTime
	}
	if *brand == "" {
		return errors.New("no brand")
	}
	*sub, *brand, *source = n, consent.CleanText(*brand, 200), consent.CleanText(*source, 200)
	return nil
}

// Reconciled is what Reconcile did.
type Reconciled struct {
	// AlreadyDone: the inbound event had been processed; nothing changed.
	AlreadyDone bool
	Notes       Notes
	// Destinations that got new outbox rows.
	Destinations []string
}

// Reconciler applies prepared batches to the consent record.
type Reconciler struct {
	Store  Ledger
	Routes []Route
	// Policy decides whether a grant lifts a standing withdrawal.
	Policy consent.Policy
	// Now is the clock for when rows are recorded and erasures happen.
	Now func() time.Time
}

// reconcileTx is one reconciliation's transaction state.
type reconcileTx struct {
	ctx       context.Context
	tx        *store.Tx
	inboundID int64
	// inboundSHA is the hex sha256 of the request's raw body.
	inboundSHA string
	routes     []Route
	policy     consent.Policy
	key        []byte
	now        time.Time
	notes      *Notes
	subjects   map[string]int64
	dests      map[string]bool
	// members caches each subject's identity set for the transaction.
	members map[int64][]store.Member
	// queued holds the suppressions already queued by this transaction
	// (destination, key, target subject): a withdrawal reaching several
	// members of one set (an erasure, two aliases in one request) queues
	// each address once.
	queued map[string]bool
	// refusedErased is set when the request tried to bring back an erased
	// identity: its raw body is emptied so the address is not kept.
	refusedErased bool
}

// Reconcile applies p with routes and the real clock (see
// Reconciler.Reconcile).
func Reconcile(ctx context.Context, st *store.Store, inboundID int64, p Prepared, routes []Route) (Reconciled, error) {
	return Reconciler{Store: st, Routes: routes, Now: time.Now}.Reconcile(ctx, inboundID, p)
}

// Item is one inbound row of a batch and its prepared content.
type Item struct {
	Inbound  *store.Inbound
	Prepared Prepared
}

// Reconcile applies p, read from inbound event inboundID, in one Postgres
// transaction (ProcessBatch of that row alone, waiting for it if another
// transaction holds it). AlreadyDone: the row was no longer 'received'.
func (rc Reconciler) Reconcile(ctx context.Context, inboundID int64, p Prepared) (Reconciled, error) {
	res, err := rc.ProcessBatch(ctx, BatchClaim{Own: inboundID, Limit: 1, Wait: true},
		func(context.Context, *store.Inbound) (Prepared, error) { return p, nil })
	if err != nil {
		return Reconciled{}, err
	}
	if len(res) == 0 {
		return Reconciled{AlreadyDone: true}, nil
	}
	return res[0].Reconciled, res[0].Err
}

// Processed is what ProcessBatch did with one inbound row.
type Processed struct {
	Inbound *store.Inbound
	Reconciled
	// Err: the row could not be read or reconciled; Final says it was
	// marked failed for good (unknown source, unparseable body), else it
	// is to be tried again (for a row other than the batch's own, its
	// attempt is counted).
	Err   error
	Final bool
}

// PrepareFunc reads a stored request into a prepared batch. An error
// wrapping ErrFinal marks the row failed for good.
type PrepareFunc func(ctx context.Context, in *store.Inbound) (Prepared, error)

// ErrFinal marks a PrepareFunc error that retrying cannot fix.
var ErrFinal = errors.New("final")

// BatchClaim says which inbound rows one batch takes (store.InboundClaim).
type BatchClaim = store.InboundClaim

// ProcessBatch claims inbound row c.Own and up to c.Limit-1 other waiting
// rows (store.Tx.ClaimInbound: free rows only, oldest first), reads each
// with prepare and reconciles them in one Postgres transaction, in three
// steps: load every fact the batch reads in a fixed number of set-based
// queries (store.Tx.Preload), decide and append item by item in memory,
// then write ledger rows, states, suppressions, contacts, request links and
// processed marks with set-based statements (store.Tx.Flush). Each item:
//   - ignores identifiers erased earlier (keyed hash match), except a new
//     valid express opt-in after the erasure (consent.Revives), which
//     starts afresh; a refused re-import leaves no address behind (the raw
//     body of the request is emptied);
//   - finds or creates its subjects;
//   - assesses each signal's grant quality (consent.Assess), appends it to
//     the subject's hash-chained ledger (a fact already there appends
//     nothing), moves the state when consent.Reconcile says so, and on a
//     move to withdrawn queues a suppression for every matching route and
//     every literal address and number of the subject's identity set;
//   - records contacts and profiles, carries out requested erasures, and
//     remembers every identifier the request named by keyed hash, so an
//     erasure finds the request.
//
// The identity locks of the whole batch are taken at once, in one sorted
// order (store.Tx.LockIdentities), so that concurrent batches never
// deadlock. A row prepare refuses for good is marked failed; one it fails
// transiently is left out (its attempt counted unless it is c.Own). If the
// transaction fails, nothing of it stays and every row it claimed is tried
// again alone, so one bad row never holds back the others. No result for
// c.Own: it was done already, or another transaction holds it (unless
// c.Wait). The error is only for a batch that could not start.
func (rc Reconciler) ProcessBatch(ctx context.Context, c BatchClaim, prepare PrepareFunc) ([]Processed, error) {
	key, err := rc.Store.IdentityKey(ctx)
	if err != nil {
		return nil, err
	}
	out, err := rc.process(ctx, key, c, prepare)
	if err == nil || ctx.Err() != nil {
		return out, err
	}
	if len(out) <= 1 {
		if len(out) == 1 {
			out[0].Err = err
			return out, nil
		}
		return nil, err
	}
	claimed := out
	out = nil
	for _, p := range claimed {
		alone := store.InboundClaim{Own: p.Inbound.ID, Limit: 1, Wait: c.Wait && p.Inbound.ID == c.Own}
		res, err := rc.process(ctx, key, alone, prepare)
		switch {
		case err != nil && p.Inbound.ID != c.Own:
			cause := "reconcile: " + err.Error()
			if rerr := rc.Store.Tx(ctx, func(tx *store.Tx) error { return tx.RecordAttempt(ctx, p.Inbound.ID, cause) }); rerr != nil {
				return out, rerr
			}
			out = append(out, Processed{Inbound: p.Inbound, Err: err})
		case err != nil:
			out = append(out, Processed{Inbound: p.Inbound, Err: err})
		case len(res) == 1:
			out = append(out, res[0])
		}
	}
	return out, nil
}

// process claims and reconciles one batch in one transaction. On failure
// it still returns the rows it had claimed (for ProcessBatch to retry).
func (rc Reconciler) process(ctx context.Context, key []byte, c BatchClaim, prepare PrepareFunc) ([]Processed, error) {
	var out []Processed
	err := rc.Store.Tx(ctx, func(tx *store.Tx) error {
		out = nil
		rows, err := tx.ClaimInbound(ctx, c)
		if err != nil {
			return err
		}
		var items []Item
		var index []int
		for _, in := range rows {
			p := Processed{Inbound: in}
			prep, err := prepare(ctx, in)
			switch {
			case errors.Is(err, ErrFinal):
				p.Err, p.Final = err, true
				if err := tx.FailInbound(ctx, in.ID, err.Error()); err != nil {
					return err
				}
			case err != nil:
				p.Err = err
				if in.ID != c.Own {
					// Counted, so that later batches leave it to its own task.
					if err := tx.RecordAttempt(ctx, in.ID, err.Error()); err != nil {
						return err
					}
				}
			default:
				index = append(index, len(out))
				items = append(items, Item{Inbound: in, Prepared: prep})
			}
			out = append(out, p)
		}
		res, err := rc.applyItems(ctx, tx, key, items)
		if err != nil {
			return err
		}
		for i, r := range res {
			out[index[i]].Reconciled = r
		}
		return nil
	})
	return out, err
}

// applyItems reconciles items (rows tx holds, still 'received'): identity
// locks of them all at once, one preload, each item in order, one flush.
func (rc Reconciler) applyItems(ctx context.Context, tx *store.Tx, key []byte, items []Item) ([]Reconciled, error) {
	if len(items) == 0 {
		return nil, nil
	}
	all := map[string]consent.Subject{}
	var named []consent.Subject
	var facts []store.LedgerFact
	for _, it := range items {
		maps.Copy(all, it.Prepared.subjects())
		named = append(named, it.Prepared.Named...)
		for _, s := range it.Prepared.Signals {
			facts = append(facts, store.LedgerFact{Source: s.Source, Key: consent.FactKey(s)})
		}
	}
	if err := tx.LockIdentities(ctx, key, all); err != nil {
		return nil, err
	}
	if err := tx.Preload(ctx, key, all, named, facts); err != nil {
		return nil, err
	}
	out := make([]Reconciled, len(items))
	for i, it := range items {
		var err error
		if out[i], err = rc.apply(ctx, tx, key, it); err != nil {
			return nil, fmt.Errorf("inbound %d: %w", it.Inbound.ID, err)
		}
	}
	return out, tx.Flush(ctx)
}

// apply reconciles one item inside tx and marks its row processed.
func (rc Reconciler) apply(ctx context.Context, tx *store.Tx, key []byte, it Item) (Reconciled, error) {
	p := it.Prepared
	res := Reconciled{Notes: p.Notes}
	res.Notes.Skipped = slices.Clone(p.Notes.Skipped)
	r := rc.newTx(ctx, tx, key, &res.Notes)
	r.inboundID, r.inboundSHA = it.Inbound.ID, hex.EncodeToString(it.Inbound.BodySHA256)
	if err := r.run(p); err != nil {
		return Reconciled{}, err
	}
	for d := range r.dests {
		res.Destinations = append(res.Destinations, d)
	}
	slices.Sort(res.Destinations)
	for i, n := range res.Notes.Skipped {
		res.Notes.Skipped[i] = consent.CleanText(n, 300)
	}
	if r.refusedErased {
		if err := tx.ForgetInboundBody(ctx, it.Inbound.ID); err != nil {
			return Reconciled{}, err
		}
	}
	return res, tx.FinishInbound(ctx, it.Inbound.ID, res.Notes)
}

// subjects are the identities p names that reconciliation locks and
// creates, by key.
func (p Prepared) subjects() map[string]consent.Subject {
	subs := map[string]consent.Subject{}
	for _, s := range p.Signals {
		subs[s.Subject.Key()] = s.Subject
	}
	for _, a := range p.Activities {
		subs[a.Subject.Key()] = a.Subject
	}
	for _, f := range p.Profiles {
		subs[f.Subject.Key()] = f.Subject
	}
	for _, l := range p.Links {
		subs[l.Email] = consent.Subject{Email: l.Email, EmailOriginal: l.EmailOriginal}
	}
	return subs
}

func (rc Reconciler) newTx(ctx context.Context, tx *store.Tx, key []byte, notes *Notes) *reconcileTx {
	now := time.Now
	if rc.Now != nil {
		now = rc.Now
	}
	return &reconcileTx{ctx: ctx, tx: tx, routes: rc.Routes, policy: rc.Policy, key: key, now: now().UTC(), notes: notes,
		subjects: map[string]int64{}, dests: map[string]bool{}, members: map[int64][]store.Member{}, queued: map[string]bool{}}
}

func (r *reconcileTx) run(p Prepared) error {
	// The batch holds the identity locks of subs (applyItems): an
	// erasure that commits while this batch runs must not be followed by
	// this batch recreating the subject with its older facts.
	subs := p.subjects()
	if err := r.tx.RecordInboundIdentities(r.ctx, r.key, r.inboundID, p.Named); err != nil {
		return err
	}
	// Which identifiers were erased (and have no live subject since), and
	// so which items survive.
	erasedAt := map[string]time.Time{}
	for k, sub := range subs {
		at, ok, err := r.tx.ErasedAt(r.ctx, store.IdentityHashes(r.key, sub))
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		live, err := r.tx.LiveSubject(r.ctx, sub)
		if err != nil {
			return err
		}
		if !live {
			erasedAt[k] = at
		}
	}
	// An address and the number given with it are one person: when one of
	// them was erased, this request's facts about the other are held to the
	// same rule (only a new valid express opt-in after the erasure counts).
	for _, l := range p.Links {
		if at, ok := erasedAt[l.Phone]; ok {
			if _, done := erasedAt[l.Email]; !done {
				erasedAt[l.Email] = at
			}
		} else if at, ok := erasedAt[l.Email]; ok {
			erasedAt[l.Phone] = at
		}
	}
	// A request that names an erased identity only in passing (a bounce, a
	// "cleaned", an event with no consent meaning) keeps no address either.
	// One query tells whether any of them was erased (a batch of a
	// thousand skipped events asks once); only then is each looked at.
	var passing []consent.Subject
	var passingHashes [][]byte
	for _, sub := range p.Named {
		if _, seen := subs[sub.Key()]; !seen {
			passing = append(passing, sub)
			passingHashes = append(passingHashes, store.IdentityHashes(r.key, sub)...)
		}
	}
	if _, someErased, err := r.tx.ErasedAt(r.ctx, passingHashes); err != nil {
		return err
	} else if !someErased {
		passing = nil
	}
	for _, sub := range passing {
		if _, ok, err := r.tx.ErasedAt(r.ctx, store.IdentityHashes(r.key, sub)); err != nil {
			return err
		} else if ok {
			if live, err := r.tx.LiveSubject(r.ctx, sub); err != nil {
				return err
			} else if !live {
				r.refusedErased = true
			}
		}
	}
	revived := map[string]bool{}
	signals := p.Signals[:0:0]
	for i, s := range p.Signals {
		at, erased := erasedAt[s.Subject.Key()]
		if erased {
			// Only a new valid express opt-in after the erasure starts
			// afresh; its quality is judged here as it will be when recorded.
			q := consent.Assess(s, consent.QualityContext{})
			if !consent.Revives(s, q, at, r.policy) {
				r.notes.Skipped = append(r.notes.Skipped, fmt.Sprintf("signal %d: identity erased before; only a new valid express opt-in after the erasure counts", i))
				r.refusedErased = true
				continue
			}
			revived[s.Subject.Key()] = true
		}
		signals = append(signals, s)
	}
	// A submission that only withdraws is no sign of interest: its form
	// contact renews nothing (consent.Renews, consent.KeepActivity).
	renews := consent.Renews(signals)
	keep := func(k string) bool {
		_, erased := erasedAt[k]
		return !erased || revived[k]
	}
	for k := range erasedAt {
		if !revived[k] {
			// Facts about an erased identity are dropped: the request must
			// not keep them in its raw body either.
			r.refusedErased = true
		}
	}
	activities := p.Activities[:0:0]
	for _, a := range p.Activities {
		if keep(a.Subject.Key()) && consent.KeepActivity(a, renews) {
			activities = append(activities, a)
		}
	}
	profiles := p.Profiles[:0:0]
	for _, f := range p.Profiles {
		if keep(f.Subject.Key()) {
			profiles = append(profiles, f)
		}
	}
	// Lock every subject the batch touches, in key order.
	need := map[string]consent.Subject{}
	for _, s := range signals {
		need[s.Subject.Key()] = s.Subject
	}
	for _, a := range activities {
		need[a.Subject.Key()] = a.Subject
	}
	for _, f := range profiles {
		need[f.Subject.Key()] = f.Subject
	}
	var links []consent.Subject
	for _, l := range p.Links {
		_, phoneKept := need[l.Phone]
		if _, erased := erasedAt[l.Email]; erased || !phoneKept {
			continue
		}
		if _, ok := need[l.Email]; !ok {
			need[l.Email] = consent.Subject{Email: l.Email, EmailOriginal: l.EmailOriginal}
		}
		links = append(links, l)
	}
	keys := make([]string, 0, len(need))
	for k := range need {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var joined []int64 // literal addresses and numbers new to their set
	ordered := make([]consent.Subject, len(keys))
	for i, k := range keys {
		ordered[i] = need[k]
		if _, erased := erasedAt[k]; erased {
			// A fresh opt-in after an erasure: a new subject, never the old one.
			ordered[i].ExternalID = ""
		}
	}
	ids, fresh, err := r.tx.EnsureSubjects(r.ctx, ordered)
	if err != nil {
		return err
	}
	for i, k := range keys {
		sub, id, created := ordered[i], ids[i], fresh[i]
		r.subjects[k] = id
		if created && strings.HasSuffix(consent.MailboxKey(sub.Email), "@gmail.com") {
			// Only a Gmail address can join a set by itself (an alias of a
			// mailbox already known); links are caught below.
			joined = append(joined, id)
		}
		if err := r.tx.RecordInbound(r.ctx, id, r.inboundID); err != nil {
			return err
		}
	}
	for _, l := range links {
		fresh, err := r.tx.LinkSubjects(r.ctx, r.subjects[l.Email], r.subjects[l.Phone])
		if err != nil {
			return err
		}
		if fresh {
			joined = append(joined, r.subjects[l.Email], r.subjects[l.Phone])
		}
	}
	for _, s := range signals {
		if err := r.applySignal(r.subjects[s.Subject.Key()], s); err != nil {
			return err
		}
	}
	for _, id := range joined {
		if err := r.catchUp(id); err != nil {
			return err
		}
	}
	for _, a := range activities {
		id := r.subjects[a.Subject.Key()]
		if err := r.tx.RecordActivity(r.ctx, id, a); err != nil {
			return err
		}
		if err := r.externalID(a.Source, a.Subject, id); err != nil {
			return err
		}
		r.notes.Activities++
	}
	for _, f := range profiles {
		id := r.subjects[f.Subject.Key()]
		if err := r.tx.RecordProfile(r.ctx, id, f); err != nil {
			return err
		}
		if err := r.externalID(f.Source, f.Subject, id); err != nil {
			return err
		}
		r.notes.Profiles++
	}
	for i, e := range p.Erasures {
		var id int64
		var err error
		if e.ExternalID != "" && e.Email == "" && e.Phone == "" {
			id, err = r.tx.SubjectByExternalID(r.ctx, p.ErasureSource, e.ExternalID)
		} else {
			id, err = r.tx.LockSubject(r.ctx, e)
		}
		if errors.Is(err, store.ErrNotFound) {
			r.notes.Skipped = append(r.notes.Skipped, fmt.Sprintf("erasure %d: subject unknown", i))
			continue
		}
		if err != nil {
			return err
		}
		done, err := r.erase(id, p.ErasureSource, r.now)
		if err != nil {
			return err
		}
		if done {
			r.notes.Erasures++
		}
	}
	return nil
}

// externalID remembers a sender-side id seen with a resolved subject.
func (r *reconcileTx) externalID(source string, sub consent.Subject, subjectID int64) error {
	if sub.ExternalID == "" || source == "" {
		return nil
	}
	return r.tx.RecordExternalID(r.ctx, source, sub.ExternalID, subjectID)
}

// applySignal reconciles one signal of subjectID inside the transaction.
func (r *reconcileTx) applySignal(subjectID int64, sig consent.Signal) error {
	ctx, tx, n := r.ctx, r.tx, r.notes
	if err := r.externalID(sig.Source, sig.Subject, subjectID); err != nil {
		return err
	}
	var quality consent.Quality
	if sig.Status != consent.StatusWithdrawn {
		first, err := tx.FirstMessageAt(ctx, subjectID, sig.Brand, sig.Channel)
		if err != nil {
			return err
		}
		quality = consent.Assess(sig, consent.QualityContext{FirstMessageAt: first})
		sig.Problems = withFails(sig.Problems, quality)
	}
	cur, err := tx.State(ctx, subjectID, sig.Channel, sig.Brand, sig.Purpose)
	if err != nil {
		return err
	}
	out := consent.Reconcile(cur, sig)
	prev, err := tx.LastHash(ctx, subjectID)
	if err != nil {
		return err
	}
	rec := consent.NewLedgerRecord(subjectID, r.inboundID, sig, out.Reason)
	rec.Quality, rec.InboundSHA256, rec.RecordedAt = quality, r.inboundSHA, consent.CanonicalTime(r.now)
	eventID, err := tx.AppendLedger(ctx, store.LedgerEntry{
		SubjectID: subjectID, InboundID: r.inboundID, DedupKey: consent.FactKey(sig), Signal: sig, Quality: quality, RecordedAt: rec.RecordedAt,
		Outcome: out.Reason, PrevHash: prev, Hash: consent.ChainHash(prev, rec),
	})
	if err != nil {
		return err
	}
	switch sig.Status {
	case consent.StatusGranted:
		n.Granted++
	case consent.StatusWithdrawn:
		n.Withdrawn++
	case consent.StatusPending:
		n.Pending++
	}
	if eventID == 0 {
		n.Duplicate++
		return nil
	}
	switch out.Reason {
	case "stale", "unchanged":
		n.Stale++
	case "invalid":
		n.Invalid++
	}
	if out.Apply {
		n.Applied++
		if err := tx.PutState(ctx, subjectID, eventID, sig); err != nil {
			return err
		}
		if out.Suppress {
			return r.suppress(subjectID, eventID, sig)
		}
	}
	if sig.Status == consent.StatusWithdrawn {
		return nil
	}
	return r.holdWithdrawal(subjectID, eventID, sig, quality)
}

// holdWithdrawal keeps a standing withdrawal in force at the providers: a
// grant or request for a key that some member of the identity set
// withdrew, and that does not lift the withdrawal (consent.LiftsWithdrawal:
// a provider's "subscribed", a re-import, a pending request), is answered
// with a suppression of the granting address at every destination that
// covers the key — the source included, since it now holds the address as
// subscribed. Without this, a Mailchimp "subscribe" of a second alias would
// leave that alias mailable at Mailchimp although the person said no.
func (r *reconcileTx) holdWithdrawal(subjectID, eventID int64, sig consent.Signal, q consent.Quality) error {
	members, err := r.setOf(subjectID)
	if err != nil {
		return err
	}
	ids := store.SubjectIDs(members)
	w, ok, err := r.tx.LatestWithdrawal(r.ctx, ids, consent.Key{Channel: sig.Channel, Brand: sig.Brand, Purpose: sig.Purpose})
	if err != nil || !ok {
		return err
	}
	if consent.LiftsWithdrawal(consent.StateFact{Status: sig.Status, OccurredAt: sig.OccurredAt, Quality: q}, w, r.policy) {
		return r.lift(subjectID, eventID, sig)
	}
	// A suppression of this address newer than the grant already answers
	// it (the withdrawal's own push, or an earlier hold).
	last, pushed, err := r.tx.LatestSuppression(r.ctx, subjectID, consent.Key{Channel: sig.Channel, Brand: sig.Brand, Purpose: sig.Purpose})
	if err != nil || pushed && !sig.OccurredAt.After(last) {
		return err
	}
	self := sig
	self.Source = "" // no echo exception: the source must hear it too
	return r.queueFor(subjectID, eventID, self, []store.Member{memberOf(members, subjectID, sig)})
}

// lift queues, for the granting address, a lift of its suppression of
// sig's key at every destination that covers the key with lift:
// on_new_opt_in, when a suppression of that address was queued before
// (the grant lifts the withdrawal: consent.LiftsWithdrawal). The grant's
// own source is skipped (it already holds the address as subscribed), and
// so is a destination that still holds another standing withdrawal of the
// address on that channel (store.Tx.OtherSuppressionStands: most providers
// keep one flag per address, and lifting it would undo that withdrawal).
func (r *reconcileTx) lift(subjectID, eventID int64, sig consent.Signal) error {
	key := consent.Key{Channel: sig.Channel, Brand: sig.Brand, Purpose: sig.Purpose}
	_, pushed, err := r.tx.LatestSuppression(r.ctx, subjectID, key)
	if err != nil || !pushed {
		return err
	}
	email := cmp.Or(sig.Subject.EmailOriginal, sig.Subject.Email)
	for _, rt := range r.routes {
		if !rt.Lift || !rt.Matches(sig) {
			continue
		}
		if other, err := r.tx.OtherSuppressionStands(r.ctx, rt.Destination, subjectID, key); err != nil {
			return err
		} else if other {
			continue
		}
		row := store.OutboxRow{
			Destination: rt.Destination, ConsentEventID: eventID, SubjectID: subjectID, TargetSubjectID: subjectID, Action: store.OutboxLift,
			Email:   sql.NullString{String: email, Valid: email != "" && sig.Channel != consent.ChannelSMS},
			Phone:   sql.NullString{String: sig.Subject.Phone, Valid: sig.Subject.Phone != "" && sig.Channel != consent.ChannelEmail},
			Channel: string(sig.Channel), Brand: sig.Brand, Purpose: string(sig.Purpose),
		}
		if !row.Email.Valid && !row.Phone.Valid {
			continue
		}
		added, err := r.tx.AddOutbox(r.ctx, row)
		if err != nil {
			return err
		}
		if added {
			r.dests[rt.Destination] = true
		}
	}
	return nil
}

// catchUp brings a member new to its identity set (a new alias, a number
// or address just linked) under the set's standing withdrawals: for each
// key some member withdrew and no later grant lifted (consent.LiftsWithdrawal
// on the set's newest grant), the new member's address is suppressed at
// every destination covering the key, as if it had been there when the
// person withdrew.
func (r *reconcileTx) catchUp(subjectID int64) error {
	delete(r.members, subjectID) // the set may have grown in this batch
	members, err := r.setOf(subjectID)
	if err != nil || len(members) < 2 {
		return err
	}
	ids := store.SubjectIDs(members)
	ws, err := r.tx.SetWithdrawals(r.ctx, ids)
	if err != nil {
		return err
	}
	self := memberOf(members, subjectID, consent.Signal{})
	for _, w := range ws {
		if w.SubjectID == subjectID {
			continue // its own withdrawal was pushed when it happened (echo rule included)
		}
		k := w.Key()
		if st, ok, err := r.tx.NewestGrant(r.ctx, ids, k); err != nil {
			return err
		} else if ok && consent.LiftsWithdrawal(st, w.OccurredAt, r.policy) {
			continue
		}
		if last, pushed, err := r.tx.LatestSuppression(r.ctx, subjectID, k); err != nil {
			return err
		} else if pushed && !last.Before(w.OccurredAt) {
			continue
		}
		sig := consent.Signal{Subject: self.Subject(), Channel: k.Channel, Brand: k.Brand, Purpose: k.Purpose,
			Status: consent.StatusWithdrawn, OccurredAt: w.OccurredAt}
		if err := r.queueFor(w.SubjectID, w.EventID, sig, []store.Member{self}); err != nil {
			return err
		}
	}
	return nil
}

// memberOf returns subjectID's entry among members (the signal's own
// identifiers when absent).
func memberOf(members []store.Member, subjectID int64, sig consent.Signal) store.Member {
	for _, m := range members {
		if m.SubjectID == subjectID {
			return m
		}
	}
	return store.Member{SubjectID: subjectID, Email: sig.Subject.Email, EmailOriginal: sig.Subject.EmailOriginal, Phone: sig.Subject.Phone}
}

// setOf returns subjectID's identity set, cached for the transaction.
func (r *reconcileTx) setOf(subjectID int64) ([]store.Member, error) {
	if members, ok := r.members[subjectID]; ok {
		return members, nil
	}
	members, err := r.tx.SetMembers(r.ctx, subjectID)
	if err != nil {
		return nil, err
	}
	r.members[subjectID] = members
	return members, nil
}

// suppress queues the withdrawal sig (ledger row eventID of subjectID) for
// every destination covering it and every literal address or number of
// the subject's identity set that the destination could reach: the
// address that withdrew, its mailbox aliases, the numbers linked to it.
// The destination the withdrawal came from is skipped for the address
// that withdrew only (Route.Matches).
func (r *reconcileTx) suppress(subjectID, eventID int64, sig consent.Signal) error {
	members, err := r.setOf(subjectID)
	if err != nil {
		return err
	}
	if len(members) == 0 {
		// Not live (being erased): the signal's own identifiers.
		members = []store.Member{memberOf(nil, subjectID, sig)}
	}
	return r.queueFor(subjectID, eventID, sig, members)
}

// queueFor queues the suppression sig (ledger row eventID of subjectID)
// for members' addresses at every route covering it, skipping the echo
// (Route.Matches) for the address that withdrew.
func (r *reconcileTx) queueFor(subjectID, eventID int64, sig consent.Signal, members []store.Member) error {
	for _, rt := range r.routes {
		if !rt.Covers(sig) {
			continue
		}
		for _, m := range members {
			row, ok := rt.suppression(subjectID, eventID, sig, m)
			if !ok {
				continue
			}
			once := fmt.Sprintf("%s|%s|%s|%s|%d", rt.Destination, sig.Channel, sig.Brand, sig.Purpose, m.SubjectID)
			if r.queued[once] {
				continue
			}
			r.queued[once] = true
			added, err := r.tx.AddOutbox(r.ctx, row)
			if err != nil {
				return err
			}
			if added {
				r.notes.Suppressions++
				r.dests[rt.Destination] = true
			}
		}
	}
	return nil
}

// suppression is the outbox row that queues the withdrawal sig (ledger row
// eventID of subjectID) at rt for member m's address or number, or false
// when none is due: m is the address that withdrew and rt the destination
// the withdrawal came from (echo, Route.Matches), or m has nothing rt's
// channel can reach. The address that withdrew is spelled as its sender
// spelled it; email goes on the email channel, the number on sms, both on
// the others. rt is assumed to cover sig (Route.Covers). Reconciliation
// (queueFor) and a destination's catch-up (CatchUp) build their rows here.
func (rt Route) suppression(subjectID, eventID int64, sig consent.Signal, m store.Member) (store.OutboxRow, bool) {
	if m.SubjectID == subjectID && !rt.Matches(sig) {
		return store.OutboxRow{}, false // echo
	}
	addr := m.Address()
	if m.SubjectID == subjectID && sig.Subject.Email == m.Email {
		// The address that withdrew, spelled as that sender spelled it.
		addr = cmp.Or(sig.Subject.EmailOriginal, addr)
	}
	var email, phone string
	switch sig.Channel {
	case consent.ChannelEmail:
		email = addr
	case consent.ChannelSMS:
		phone = m.Phone
	default:
		email, phone = addr, m.Phone
	}
	if email == "" && phone == "" {
		return store.OutboxRow{}, false
	}
	return store.OutboxRow{
		Destination: rt.Destination, ConsentEventID: eventID, SubjectID: subjectID, TargetSubjectID: m.SubjectID,
		Email:   sql.NullString{String: email, Valid: email != ""},
		Phone:   sql.NullString{String: phone, Valid: phone != ""},
		Channel: string(sig.Channel), Brand: sig.Brand, Purpose: string(sig.Purpose),
		Reason: sql.NullString{String: sig.Evidence.Event, Valid: sig.Evidence.Event != ""},
	}, true
}

// withFails adds to problems the reason of each failed criterion that no
// problem names yet, so that Signal.Valid sees every fail.
func withFails(problems []string, q consent.Quality) []string {
	for _, a := range q {
		if a.Verdict != consent.Fail {
			continue
		}
		named := false
		for _, p := range problems {
			if strings.HasPrefix(p, string(a.Criterion)+":") || p == a.Reason {
				named = true
				break
			}
		}
		if !named {
			problems = append(problems, string(a.Criterion)+": "+a.Reason)
		}
	}
	return problems
}

// erase withdraws everything the subject had granted, and everything every
// destination could send, then removes its personal data (Tx.EraseData).
// Suppressions keep the address until pushed. Every other member of the
// identity set (mailbox aliases, linked numbers) is erased with it. It
// reports false when the subject was already erased.
func (r *reconcileTx) erase(subjectID int64, source string, at time.Time) (bool, error) {
	pre, err := r.tx.PeekIdentity(r.ctx, subjectID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// Lock the identities of the whole set in one sorted call, as a webhook
	// does (Tx.LockIdentities): locking member by member while walking the
	// set would take them in another order than concurrent webhooks and
	// deadlock. Locks already held (a recursive call) are taken again at
	// once.
	lock := map[string]consent.Subject{pre.Key(): pre}
	if set, err := r.tx.SetMembers(r.ctx, subjectID); err != nil {
		return false, err
	} else {
		for _, m := range set {
			lock[m.Subject().Key()] = m.Subject()
		}
	}
	if err := r.tx.LockIdentities(r.ctx, r.key, lock); err != nil {
		return false, err
	}
	sub, err := r.tx.SubjectIdentity(r.ctx, subjectID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	members, err := r.tx.SetMembers(r.ctx, subjectID)
	if err != nil {
		return false, err
	}
	keys, err := r.tx.StateKeys(r.ctx, subjectID)
	if err != nil {
		return false, err
	}
	for _, rt := range r.routes {
		for _, ch := range rt.Channels {
			for _, pu := range rt.Purposes {
				keys = append(keys, consent.Key{Channel: ch, Brand: rt.Brand, Purpose: pu})
			}
		}
	}
	seen := map[consent.Key]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if k.Channel == consent.ChannelEmail && sub.Email == "" || k.Channel == consent.ChannelSMS && sub.Phone == "" {
			continue
		}
		sig := consent.Signal{Subject: sub, Channel: k.Channel, Brand: k.Brand, Purpose: k.Purpose,
			Status: consent.StatusWithdrawn, OccurredAt: consent.CanonicalTime(at), Source: cmp.Or(source, "erasure"),
			Evidence: consent.Evidence{Event: "erasure"}}
		if err := r.applySignal(subjectID, sig); err != nil {
			return false, err
		}
	}
	if err := r.tx.EraseData(r.ctx, r.key, subjectID, sub, at); err != nil {
		return false, err
	}
	// Every alias of the mailbox (Gmail dots, +tags) and every number given
	// with the address is the same person.
	for _, m := range members {
		if m.SubjectID == subjectID {
			continue
		}
		if _, err := r.erase(m.SubjectID, source, at); err != nil {
			return false, err
		}
	}
	return true, nil
}

// Erase carries out an erasure request (GDPR art. 17) for subjectID and
// every other member of its identity set: every consent is withdrawn and
// pushed as a suppression to every destination, then the personal data is
// removed (store.Tx.EraseData), all in one transaction; the pushes are
// enqueued after it commits. source names who asked ("admin-api", a source
// name). It returns store.ErrNotFound when the subject does not exist or
// was already erased.
func (w *Worker) Erase(ctx context.Context, subjectID int64, source string) error {
	rc := w.reconciler()
	key, err := w.Store.IdentityKey(ctx)
	if err != nil {
		return err
	}
	var dests []string
	err = w.Store.Tx(ctx, func(tx *store.Tx) error {
		n := Notes{}
		r := rc.newTx(ctx, tx, key, &n)
		done, err := r.erase(subjectID, source, r.now)
		if err != nil {
			return err
		}
		if !done {
			return store.ErrNotFound
		}
		for d := range r.dests {
			dests = append(dests, d)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range dests {
		if err := w.Enqueuer.Push(ctx, d); err != nil {
			w.Logger.Warn("enqueue push failed; the sweeper will retry", "destination", d, "err", err)
		}
	}
	w.Logger.Info("subject erased", "subject", subjectID, "by", source, "destinations", len(dests))
	return nil
}
