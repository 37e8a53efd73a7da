package backfill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/consentsync/consentsync/connectors/imported"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// CSVOptions say how to read one export.
type CSVOptions struct {
	// Source is the name the imported signals carry (the ledger's
	// source, the inbox row's source). A source or destination of the same
	// name is not pushed the file's withdrawals for the same address (the
	// echo rule).
	Source  string
	Columns Columns
	// Defaults fill what a row leaves empty.
	Defaults Defaults
	// Brands are the configured brands a row may name.
	Brands []string
	// Region reads national phone numbers.
	Region string
	// Comma is the field separator (',' when zero).
	Comma rune
	// ChunkRows is how many data rows one inbox row holds (default 500):
	// memory stays bounded by one chunk whatever the file's size.
	ChunkRows int
	// DryRun reads and checks everything and writes nothing; it reports
	// what the new chunks would do to the current states
	// (Summary.WouldChange, AlreadySo, OlderThanState).
	DryRun bool
	// Reject is called for each rejected row with its line number (1 is
	// the header) and reason; nil to only count them.
	Reject func(line int, reason string)
}

// DefaultChunkRows is CSVOptions.ChunkRows' default.
const DefaultChunkRows = 500

var sourceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// CSV imports an export read from r (see package doc): the header row
// maps columns (NewMapping), each data row becomes a signal or is
// rejected with its line number, and every o.ChunkRows valid rows are
// committed as one inbox row. It returns the summary; its error is for
// what stops the whole import (an unreadable header, the store), not for
// bad rows.
func (im *Importer) CSV(ctx context.Context, r io.Reader, o CSVOptions) (Summary, error) {
	s := Summary{Kind: store.ImportCSV, Name: o.Source, DryRun: o.DryRun}
	if !sourceName.MatchString(o.Source) {
		return s, errors.New("-source: give a name (letters, digits, _ . -)")
	}
	if o.ChunkRows <= 0 {
		o.ChunkRows = DefaultChunkRows
	}
	rows, err := NewRows(r, o.Comma, o.Columns, o.Defaults, o.Brands, o.Region)
	if err != nil {
		return s, err
	}
	m := rows.Mapping
	s.UnknownColumns = m.Unknown
	var run *store.ImportRun
	if !o.DryRun {
		if run, _, err = im.Store.StartImport(ctx, store.ImportCSV, o.Source, false); err != nil {
			return s, err
		}
		s.RunID = run.ID
	}
	at := im.now()
	evidence := imported.Evidence(o.Source, at)
	var ids []int64
	var chunk []consent.Signal
	// seen holds the keys of the chunks a dry run would have written: a
	// chunk repeated later in the file is a duplicate, as the run finds it.
	seen := map[string]bool{}
	first, last := 0, 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		s.Pages++
		key := pageKey("csv", o.Source, chunk)
		if o.DryRun {
			exists := seen[key]
			if !exists {
				var err error
				if exists, err = im.Store.InboundExists(ctx, o.Source, key); err != nil {
					return err
				}
			}
			if exists {
				s.DuplicatePages++
			} else {
				s.InboxRows++
				seen[key] = true
				if err := im.probe(ctx, chunk, o.Region, &s); err != nil {
					return err
				}
			}
		} else {
			for i := range chunk {
				chunk[i].Evidence.Imported = evidence
				chunk[i].Source = o.Source
			}
			p := imported.Page{From: fmt.Sprintf("csv -source %s lines %d-%d", o.Source, first, last), Signals: chunk}
			id, dup, err := im.commit(ctx, o.Source, key, p)
			if err != nil {
				return err
			}
			if dup {
				s.DuplicatePages++
			} else {
				s.InboxRows++
				ids = append(ids, id)
			}
			run.Pages, run.Items, run.InboxRows, run.Duplicates, run.Rejected = s.Pages, s.Items, s.InboxRows, s.DuplicatePages, s.Rejected
			if err := im.Store.SaveImport(ctx, run); err != nil {
				return err
			}
		}
		im.page(len(chunk))
		chunk = chunk[:0]
		return nil
	}
	reject := func(line int, reason string) {
		s.Rejected++
		if o.Reject != nil {
			o.Reject(line, reason)
		}
	}
	lastShown := time.Now()
	fail := func(err error) (Summary, error) {
		if run != nil {
			_ = im.Store.FinishImport(context.WithoutCancel(ctx), run, store.ImportFailed, err.Error())
		}
		return s, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		row, err := rows.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
		s.Items++
		if row.Reject != "" {
			reject(row.Line, row.Reject)
			continue
		}
		sig, line := row.Signal, row.Line
		if len(chunk) == 0 {
			first = line
		}
		last = line
		sig.Source = o.Source
		sig.Evidence.Imported = evidence
		s.count(sig)
		sig.Evidence.Imported = ""
		chunk = append(chunk, sig)
		if len(chunk) >= o.ChunkRows {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
		if time.Since(lastShown) >= time.Second {
			im.progress("import csv %s: %d rows read, %d rejected, %d chunks", o.Source, s.Items, s.Rejected, s.Pages)
			lastShown = time.Now()
		}
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	im.read()
	im.progress("import csv %s: %d rows read, %d rejected, %d chunks: done reading", o.Source, s.Items, s.Rejected, s.Pages)
	if o.DryRun {
		return s, nil
	}
	if err := im.Store.FinishImport(ctx, run, store.ImportDone, ""); err != nil {
		return s, err
	}
	if im.Wait > 0 {
		if err := im.wait(ctx, ids, &s); err != nil {
			return s, err
		}
	}
	return s, nil
}
