// Package backfill is `consentsync import`: it brings a company's existing
// unsubscribes into consentsync, from a destination's API (Provider) or
// from a CSV export (CSV).
//
// Nothing is reconciled here. Each provider page, or each chunk of CSV
// rows, is committed to the inbox as one row of kind imported.Kind with a
// dedup key derived from its content, then enqueued: the worker turns it
// into signals, the ledger, suppressions and pushes exactly as it does a
// webhook (docs/design.md, "Backfill"). So an import is durable once a page
// is committed, idempotent (a page imported again is an inbox duplicate,
// and a signal recorded again a ledger duplicate: the fact key includes
// occurred_at), and a withdrawal imported from destination X is never
// pushed back to X (the echo rule: its signals carry X as their source)
// while every other destination covering it gets it.
package backfill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/consentsync/consentsync/connectors/imported"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
	"github.com/consentsync/consentsync/worker"
)

// Queue enqueues an inbox row's task (jobs.Enqueuer).
type Queue interface {
	Inbound(ctx context.Context, id int64) error
}

// Importer writes imported pages to the inbox and waits for the worker.
type Importer struct {
	Store *store.Store
	Queue Queue
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Progress receives plain progress lines (stderr); nil for none.
	Progress io.Writer
	// Wait is how long to wait, after the last page, for the worker to
	// process the pages (0: do not wait; the summary then counts what was
	// committed, not what was applied).
	Wait time.Duration
	// Poll is how often the inbox is read while waiting (default 200ms).
	Poll time.Duration
	// OnPage, when set, is called after each provider page or CSV chunk
	// is handled, with the number of items it held (a progress bar).
	OnPage func(items int)
	// OnRead, when set, is called once reading is over, before waiting
	// for the worker.
	OnRead func()
}

func (im *Importer) page(items int) {
	if im.OnPage != nil {
		im.OnPage(items)
	}
}

func (im *Importer) read() {
	if im.OnRead != nil {
		im.OnRead()
	}
}

func (im *Importer) now() time.Time {
	if im.Now != nil {
		return im.Now()
	}
	return time.Now()
}

func (im *Importer) progress(format string, args ...any) {
	if im.Progress != nil {
		fmt.Fprintf(im.Progress, format+"\n", args...)
	}
}

// Summary is what an import did. Counts are of items (provider entries,
// CSV data rows), signals (an item may withdraw several purposes), inbox
// rows (pages or chunks) and, once the worker processed them, ledger
// outcomes. For a resumed provider run, Pages, Items, Rejected, InboxRows
// and DuplicatePages count the whole run; signal counts and ledger
// outcomes count this invocation's pages.
type Summary struct {
	Kind   string // store.ImportProvider or store.ImportCSV
	Name   string
	DryRun bool
	// Resumed: a provider import continued an interrupted run.
	Resumed bool
	RunID   int64
	// Pages is the provider pages or CSV chunks read; Items their entries
	// or data rows.
	Pages int64
	Items int64
	// Rejected items could not be read (each reported with its line
	// number or position and reason).
	Rejected int64
	// Signals built from the items, by status.
	Withdrawals, Grants, Pending int64
	// Echoes are provider-import withdrawals left out because consentsync
	// itself pushed that suppression to the destination (store.PushedBy):
	// the provider was reading back what we hold already.
	Echoes int64
	// GrantsWithoutProof are grants imported with no tick nor
	// confirmation: recorded with criterion express unknown.
	GrantsWithoutProof int64
	// InboxRows were committed; DuplicatePages were already in the inbox
	// (imported before: nothing imported twice).
	InboxRows      int64
	DuplicatePages int64
	// What the worker did with the committed rows (when waited for):
	// signals applied, already in the ledger (duplicates), older than the
	// state (stale), and rows not processed within Importer.Wait.
	Processed   int64
	Applied     int64
	Duplicates  int64
	Stale       int64
	Invalid     int64
	Unprocessed int64
	FailedRows  int64
	// UnknownColumns are CSV header cells that map to no field (ignored).
	UnknownColumns []string
	// Dry run only, for the signals of chunks not imported yet: how many
	// would change the current state (none yet, or another status older
	// than the row), are that state already, or are older than the state.
	WouldChange, AlreadySo, OlderThanState int64
}

// Print writes the summary as a few plain lines.
func (s Summary) Print(w io.Writer) {
	verb := "imported"
	if s.DryRun {
		verb = "would import (dry run: nothing written)"
	}
	fmt.Fprintf(w, "import %s %s: %s\n", s.Kind, s.Name, verb)
	unit := "pages"
	if s.Kind == store.ImportCSV {
		unit = "chunks"
	}
	fmt.Fprintf(w, "  read:        %d %s, %d items, %d rejected\n", s.Pages, unit, s.Items, s.Rejected)
	fmt.Fprintf(w, "  signals:     %d withdrawals, %d grants (%d without proof: quality unknown), %d pending\n",
		s.Withdrawals, s.Grants, s.GrantsWithoutProof, s.Pending)
	if s.Echoes > 0 {
		fmt.Fprintf(w, "  echoes:      %d left out: consentsync pushed these suppressions to %s itself\n", s.Echoes, s.Name)
	}
	if s.DryRun {
		fmt.Fprintf(w, "  inbox:       %d %s to write, %d already imported\n", s.InboxRows, unit, s.DuplicatePages)
		fmt.Fprintf(w, "  would:       change %d current states, leave %d as they are (same status), %d older than the state\n",
			s.WouldChange, s.AlreadySo, s.OlderThanState)
		s.printIgnored(w)
		return
	}
	fmt.Fprintf(w, "  inbox:       %d %s written, %d already imported (duplicates)\n", s.InboxRows, unit, s.DuplicatePages)
	if s.Processed+s.Unprocessed > 0 {
		fmt.Fprintf(w, "  recorded:    %d signals applied, %d already recorded (duplicates), %d stale, %d invalid\n",
			s.Applied, s.Duplicates, s.Stale, s.Invalid)
	}
	if s.Unprocessed > 0 {
		fmt.Fprintf(w, "  waiting:     %d %s not processed yet: a running worker (consentsync work) processes them\n", s.Unprocessed, unit)
	}
	if s.FailedRows > 0 {
		fmt.Fprintf(w, "  failed:      %d %s failed (see consentsync queues; replay them with consentsync replay)\n", s.FailedRows, unit)
	}
	s.printIgnored(w)
}

// printIgnored lists the CSV columns the mapping did not use, if any.
func (s Summary) printIgnored(w io.Writer) {
	if len(s.UnknownColumns) > 0 {
		fmt.Fprintf(w, "  ignored columns: %v\n", s.UnknownColumns)
	}
}

// count adds sig to the summary's signal counts.
func (s *Summary) count(sig consent.Signal) {
	switch sig.Status {
	case consent.StatusWithdrawn:
		s.Withdrawals++
	case consent.StatusGranted:
		s.Grants++
		if consent.ImportedWithoutProof(consent.Assess(sig, consent.QualityContext{})) {
			s.GrantsWithoutProof++
		}
	case consent.StatusPending:
		s.Pending++
	}
}

// probe adds to s what sigs would do to the current states (dry run).
func (im *Importer) probe(ctx context.Context, sigs []consent.Signal, region string, s *Summary) error {
	probes := make([]store.StateProbe, 0, len(sigs))
	for _, sig := range sigs {
		sub, err := consent.NormalizeSubject(sig.Subject, region)
		if err != nil {
			continue // Mapping.Row validated it: not reached
		}
		p := store.StateProbe{Channel: string(sig.Channel), Brand: sig.Brand, Purpose: string(sig.Purpose)}
		if sig.Channel == consent.ChannelEmail || sub.Phone == "" {
			p.Email = sub.Email
		} else {
			p.Phone = sub.Phone
		}
		probes = append(probes, p)
	}
	seen, err := im.Store.ProbeStates(ctx, probes)
	if err != nil {
		return err
	}
	for i, st := range seen {
		switch {
		case !st.Found:
			s.WouldChange++
		case st.Status == string(sigs[i].Status):
			s.AlreadySo++
		case st.OccurredAt.After(sigs[i].OccurredAt):
			s.OlderThanState++
		default:
			s.WouldChange++
		}
	}
	return nil
}

// pageKey is an imported page's inbox dedup key: a hash of what makes its
// signals (source, subject, channel, brand, purpose, status, occurred_at,
// evidence but the import time), so the same page read again is a
// duplicate whatever run reads it.
func pageKey(prefix, source string, sigs []consent.Signal) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", prefix, source)
	for _, s := range sigs {
		s.Evidence.Imported = ""
		s.Source = ""
		b, _ := json.Marshal(s)
		h.Write(b)
		h.Write([]byte{0})
	}
	return "import:" + prefix + ":" + hex.EncodeToString(h.Sum(nil))
}

// commit writes one page to the inbox and enqueues it. It returns the row
// id and whether the page was there already.
func (im *Importer) commit(ctx context.Context, source, key string, p imported.Page) (int64, bool, error) {
	body, err := imported.Encode(p)
	if err != nil {
		return 0, false, err
	}
	id, dup, err := im.Store.InsertInbound(ctx, store.Inbound{
		Source: source, Kind: imported.Kind, DedupKey: key, Method: imported.Method, Path: imported.Path, Body: body,
	})
	if err != nil {
		return 0, false, err
	}
	if !dup && im.Queue != nil {
		if err := im.Queue.Inbound(ctx, id); err != nil {
			// Committed: the sweeper enqueues it later.
			im.progress("warning: page %d committed but not enqueued (the sweeper will pick it up): %v", id, err)
		}
	}
	return id, dup, nil
}

// wait polls the inbox rows ids until the worker has processed them all
// or im.Wait elapses, and adds the outcomes to s.
func (im *Importer) wait(ctx context.Context, ids []int64, s *Summary) error {
	if len(ids) == 0 {
		return nil
	}
	poll := im.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	deadline := im.now().Add(im.Wait)
	pending := append([]int64(nil), ids...)
	lastShown := -1
	for {
		var still []int64
		for start := 0; start < len(pending); start += 5000 {
			chunk := pending[start:min(start+5000, len(pending))]
			states, err := im.Store.InboundStates(ctx, chunk)
			if err != nil {
				return err
			}
			for _, st := range states {
				switch st.Status {
				case store.InboundProcessed:
					s.Processed++
					var n worker.Notes
					_ = json.Unmarshal(st.Notes, &n)
					s.Applied += int64(n.Applied)
					s.Duplicates += int64(n.Duplicate)
					s.Stale += int64(n.Stale)
					s.Invalid += int64(n.Invalid)
				case store.InboundFailed:
					s.FailedRows++
				default:
					still = append(still, st.ID)
				}
			}
		}
		pending = still
		if len(pending) == 0 {
			s.Unprocessed = 0
			return nil
		}
		s.Unprocessed = int64(len(pending))
		if len(pending) != lastShown {
			im.progress("waiting for the worker: %d of %d pages processed", len(ids)-len(pending), len(ids))
			lastShown = len(pending)
		}
		if !im.now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}
