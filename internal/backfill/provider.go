package backfill

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/imported"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// ProviderOptions say how to read one destination.
type ProviderOptions struct {
	// Destination is the configured destination listed: its name is the
	// signals' source (so the echo rule keeps them from being pushed back
	// to it), its brand, channels and purposes those of the withdrawals.
	Destination config.Destination
	// MaxPages stops after this many pages in this run (0: no limit); the
	// run stays open and the next one resumes at its cursor. For tests and
	// for spreading a large backfill over several windows.
	MaxPages int
	// Retries is how many times one page is asked again after a transient
	// failure or a 429 (default 5). A 429's own wait (its reset header) is
	// honoured, up to MaxWait each (default 10 minutes).
	Retries int
	MaxWait time.Duration
	// Sleep waits d or until ctx ends (tests pass a fake).
	Sleep func(ctx context.Context, d time.Duration) error
}

// ErrNotLister is returned for a destination whose kind cannot list what
// the provider holds.
var ErrNotLister = errors.New("this destination's kind cannot list its suppressions")

// Provider imports the suppressions destination d's provider holds: page
// after page through l (connectors.Lister), each committed to the inbox as
// one row and enqueued, the cursor of the next page persisted in
// import_runs after each, so an interrupted run (a crash, ^C, MaxPages) is
// resumed by the next. Each item becomes a withdrawal for every channel
// and purpose the destination honours (or the item's own purpose), dated
// with the provider's own date, else with the time of the destination's
// first import (so importing it again records nothing new), with
// Evidence.Imported "imported from <destination> at <time>" and
// Evidence.Event the provider's reason. The rate of calls is the
// destination's own (its HTTP client carries the rate limiter).
func (im *Importer) Provider(ctx context.Context, l connectors.Lister, o ProviderOptions) (Summary, error) {
	d := o.Destination
	s := Summary{Kind: store.ImportProvider, Name: d.Name}
	if l == nil {
		return s, ErrNotLister
	}
	if o.Retries <= 0 {
		o.Retries = 5
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 10 * time.Minute
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	run, resumed, err := im.Store.StartImport(ctx, store.ImportProvider, d.Name, true)
	if err != nil {
		return s, err
	}
	s.RunID, s.Resumed = run.ID, resumed
	if resumed {
		s.Pages, s.Items, s.InboxRows, s.DuplicatePages, s.Rejected = run.Pages, run.Items, run.InboxRows, run.Duplicates, run.Rejected
		im.progress("import provider %s: resuming run %d after %d pages", d.Name, run.ID, run.Pages)
	}
	undated, err := im.Store.FirstImportAt(ctx, store.ImportProvider, d.Name)
	if err != nil {
		return s, err
	}
	undated = consent.CanonicalTime(undated)
	var ids []int64
	pagesThisRun := 0
	for {
		if o.MaxPages > 0 && pagesThisRun >= o.MaxPages {
			im.progress("import provider %s: stopped after %d pages; run again to resume", d.Name, pagesThisRun)
			return s, nil
		}
		page, next, err := im.list(ctx, l, run.Cursor, o)
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, connectors.ErrPermanent) {
				_ = im.Store.FinishImport(context.WithoutCancel(ctx), run, store.ImportFailed, err.Error())
			}
			// Anything else leaves the run open: the next run resumes here.
			return s, fmt.Errorf("page %d: %w", run.Pages+1, err)
		}
		pagesThisRun++
		at := im.now()
		sigs, narrowed, rejected := withdrawals(page, d, imported.Evidence(d.Name, at), undated, at)
		sigs, echoes, err := im.withoutEchoes(ctx, d.Name, sigs, narrowed)
		if err != nil {
			return s, fmt.Errorf("page %d: %w", run.Pages+1, err) // the run stays open: the next one resumes here
		}
		s.Echoes += echoes
		s.Pages++
		s.Items += int64(len(page))
		s.Rejected += int64(len(rejected))
		for _, sig := range sigs {
			s.count(sig)
		}
		if len(sigs) > 0 || len(rejected) > 0 {
			p := imported.Page{From: "provider " + d.Name, Signals: sigs, Skipped: rejected}
			id, dup, err := im.commit(ctx, d.Name, pageKey("provider", d.Name, sigs), p)
			if err != nil {
				return s, err
			}
			if dup {
				s.DuplicatePages++
			} else {
				s.InboxRows++
				ids = append(ids, id)
			}
		}
		run.Cursor = next
		run.Pages, run.Items, run.InboxRows, run.Duplicates, run.Rejected = s.Pages, s.Items, s.InboxRows, s.DuplicatePages, s.Rejected
		if err := im.Store.SaveImport(context.WithoutCancel(ctx), run); err != nil {
			return s, err
		}
		im.progress("import provider %s: page %d, %d items, %d withdrawals", d.Name, s.Pages, s.Items, s.Withdrawals)
		im.page(len(page))
		if next == "" {
			break
		}
	}
	if err := im.Store.FinishImport(ctx, run, store.ImportDone, ""); err != nil {
		return s, err
	}
	im.read()
	if im.Wait > 0 {
		if err := im.wait(ctx, ids, &s); err != nil {
			return s, err
		}
	}
	return s, nil
}

// list reads one page, waiting out 429s (the provider's reset time) and
// retrying transient failures with a growing pause.
func (im *Importer) list(ctx context.Context, l connectors.Lister, cursor string, o ProviderOptions) ([]connectors.Listed, string, error) {
	pause := time.Second
	for attempt := 0; ; attempt++ {
		page, next, err := l.List(ctx, cursor)
		if err == nil {
			return page, next, nil
		}
		if errors.Is(err, connectors.ErrPermanent) || ctx.Err() != nil || attempt >= o.Retries {
			return nil, "", err
		}
		wait := pause
		if d, ok := connectors.RetryDelay(err); ok {
			wait = d
		} else {
			pause = min(pause*2, 30*time.Second)
		}
		wait = min(max(wait, 10*time.Millisecond), o.MaxWait)
		im.progress("provider busy or unavailable, retrying in %s: %v", wait.Round(time.Millisecond), err)
		if err := o.Sleep(ctx, wait); err != nil {
			return nil, "", err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// withoutEchoes drops the withdrawals of sigs whose address or number
// consentsync itself pushed to destination on the signal's channel and
// still holds there (store.PushedBy): importing from a destination after
// go-live reads back our own suppressions, which tell nothing new. A
// withdrawal the provider narrowed to one purpose (narrowed[i]: a SendGrid
// group, a HubSpot subscription type) echoes our push of that purpose
// only; one of the whole contact (an unsubscribe from the list) echoes
// our push of any purpose there. It returns the others and how many it
// dropped.
func (im *Importer) withoutEchoes(ctx context.Context, destination string, sigs []consent.Signal, narrowed []bool) ([]consent.Signal, int64, error) {
	probe := func(sig consent.Signal) (store.Pushed, bool) {
		n, err := consent.NormalizeSubject(sig.Subject, "")
		if err != nil {
			return store.Pushed{}, false
		}
		p := store.Pushed{Ident: n.Phone, Channel: string(sig.Channel)}
		if sig.Channel == consent.ChannelEmail {
			p.Ident = n.Email
		}
		return p, p.Ident != ""
	}
	var probes []store.Pushed
	for _, sig := range sigs {
		if p, ok := probe(sig); ok {
			probes = append(probes, p)
		}
	}
	pushed, err := im.Store.PushedBy(ctx, destination, probes)
	if err != nil || len(pushed) == 0 {
		return sigs, 0, err
	}
	kept := sigs[:0:0]
	for i, sig := range sigs {
		p, ok := probe(sig)
		purposes := pushed[p]
		if !ok || len(purposes) == 0 || narrowed[i] && !purposes[string(sig.Purpose)] {
			kept = append(kept, sig)
		}
	}
	return kept, int64(len(sigs) - len(kept)), nil
}

// Withdrawals turns a listed page into withdrawals for destination d: one
// per channel d sends on that the item can be reached on (email needs an
// address, sms and phone a number) and per purpose d honours (or the
// item's own, when d honours it). Items dated after now or without a date
// take undated (the first import's time) or now. Items that name no usable
// address are rejected: "item 3: bad email".
func Withdrawals(page []connectors.Listed, d config.Destination, evidence string, undated, now time.Time) ([]consent.Signal, []string) {
	sigs, _, rejected := withdrawals(page, d, evidence, undated, now)
	return sigs, rejected
}

// withdrawals is Withdrawals, also saying of each signal whether its item
// named its purpose (Listed.Purpose).
func withdrawals(page []connectors.Listed, d config.Destination, evidence string, undated, now time.Time) ([]consent.Signal, []bool, []string) {
	var out []consent.Signal
	var narrowed []bool
	var rejected []string
	for i, it := range page {
		sub := consent.Subject{Email: it.Email, Phone: it.Phone}
		if _, err := consent.NormalizeSubject(sub, ""); err != nil && it.Phone == "" {
			rejected = append(rejected, fmt.Sprintf("item %d: bad email", i))
			continue
		}
		at := it.At
		if at.IsZero() {
			at = undated
		}
		if at.IsZero() || at.After(now) {
			at = now
		}
		at = consent.CanonicalTime(at)
		n := len(out)
		for _, ch := range d.Channels {
			c := consent.Channel(ch)
			if c == consent.ChannelEmail && it.Email == "" || c != consent.ChannelEmail && it.Phone == "" {
				continue
			}
			for _, pu := range d.Purposes {
				p := consent.Purpose(pu)
				if it.Purpose != "" && it.Purpose != p {
					continue
				}
				out = append(out, consent.Signal{
					Subject: sub, Channel: c, Brand: d.Brand, Purpose: p, Status: consent.StatusWithdrawn, OccurredAt: at,
					Source: d.Name, Evidence: consent.Evidence{Imported: evidence, Event: consent.CleanText(it.Reason, 200)},
				})
				narrowed = append(narrowed, it.Purpose != "")
			}
		}
		if len(out) == n {
			rejected = append(rejected, fmt.Sprintf("item %d: no channel or purpose of the destination covers it", i))
		}
	}
	return out, narrowed, rejected
}
