package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/app"
	"github.com/consentsync/consentsync/internal/backfill"
)

const importUsage = `usage:
  consentsync import provider -destination NAME [-wait 10m] [-max-pages N]
  consentsync import csv FILE -source NAME [-brand B] [-channel C] [-purpose P] [-status S]
        [-occurred-at T] [-timezone Z] [-col field=Header ...] [-columns FILE] [-chunk N] [-dry-run] [-wait 10m]
(README.md, "Backfill")`

// importCmd is `consentsync import provider|csv` (internal/backfill).
// Progress goes to stderr, rejected rows and the summary to stdout.
func importCmd(ctx context.Context, log *slog.Logger, args []string) error {
	if len(args) == 0 {
		return errors.New(importUsage)
	}
	switch args[0] {
	case "provider":
		return importProvider(ctx, log, args[1:], os.Stdout, os.Stderr)
	case "csv":
		return importCSV(ctx, log, args[1:], os.Stdout, os.Stderr)
	}
	return fmt.Errorf("unknown import %q\n%s", args[0], importUsage)
}

func importProvider(ctx context.Context, log *slog.Logger, args []string, out io.Writer, stderr *os.File) error {
	fs := flag.NewFlagSet("import provider", flag.ContinueOnError)
	dest := fs.String("destination", "", "the configured destination whose provider's suppressions to import")
	wait := fs.Duration("wait", 10*time.Minute, "how long to wait for the worker to process the imported pages (0: do not wait)")
	maxPages := fs.Int("max-pages", 0, "stop after this many pages (the next run resumes); 0: all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dest == "" {
		return errors.New("give -destination NAME")
	}
	cfg, a, err := openApp(ctx, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	d, ok := cfg.Destination(*dest)
	if !ok {
		return fmt.Errorf("-destination %q: not a configured destination", *dest)
	}
	l, ok := a.Worker.Destinations[d.Name].(connectors.Lister)
	if !ok {
		return fmt.Errorf("-destination %q (kind %s): %w", d.Name, d.Kind, backfill.ErrNotLister)
	}
	ui := newProgress(stderr, -1, "import provider "+d.Name)
	im := &backfill.Importer{Store: a.Store, Queue: a.Enqueuer, Progress: ui, Wait: *wait, OnPage: ui.onPage, OnRead: ui.done}
	s, err := im.Provider(ctx, l, backfill.ProviderOptions{Destination: d, MaxPages: *maxPages})
	ui.done()
	s.Print(out)
	return err
}

func importCSV(ctx context.Context, log *slog.Logger, args []string, out io.Writer, stderr *os.File) error {
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("import csv", flag.ContinueOnError)
	source := fs.String("source", "", "name the imported signals carry as their source (required)")
	brand := fs.String("brand", "", "brand of rows without a brand column or value (default: the only configured brand)")
	channel := fs.String("channel", "email", "channel of rows without one")
	purpose := fs.String("purpose", "marketing", "purpose of rows without one")
	status := fs.String("status", "", "status of rows without one (e.g. withdrawn for an export of unsubscribes)")
	occurred := fs.String("occurred-at", "", "date of rows without one (RFC 3339); without it a date is required")
	tz := fs.String("timezone", "UTC", "IANA zone of dates written without one")
	comma := fs.String("comma", ",", "field separator (one character; \\t for tab)")
	chunk := fs.Int("chunk", backfill.DefaultChunkRows, "data rows per inbox row")
	dry := fs.Bool("dry-run", false, "check the file and report what would be imported; write nothing")
	wait := fs.Duration("wait", 10*time.Minute, "how long to wait for the worker to process the imported rows (0: do not wait)")
	mapFile := fs.String("columns", "", "YAML file mapping fields to the export's headers (field: Header)")
	cols := backfill.Columns{}
	fs.Var(cols, "col", "field=Header: read field from the column named Header (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
	}
	if file == "" {
		return errors.New("give the CSV file: consentsync import csv FILE -source NAME")
	}
	if *mapFile != "" {
		fromFile, err := backfill.LoadColumns(*mapFile)
		if err != nil {
			return fmt.Errorf("-columns: %w", err)
		}
		for f, h := range fromFile {
			if _, set := cols[f]; !set {
				cols[f] = h
			}
		}
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("-timezone: %w", err)
	}
	d := backfill.Defaults{Brand: *brand, Channel: consent.Channel(*channel), Purpose: consent.Purpose(*purpose), Location: loc}
	if *status != "" {
		if d.Status, err = backfill.ParseStatus(*status, ""); err != nil {
			return fmt.Errorf("-status: %w", err)
		}
	}
	if *occurred != "" {
		if d.OccurredAt, err = time.Parse(time.RFC3339, *occurred); err != nil {
			return fmt.Errorf("-occurred-at: %w", err)
		}
	}
	sep := []rune(strings.ReplaceAll(*comma, `\t`, "\t"))
	if len(sep) != 1 {
		return errors.New("-comma: give one character")
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	a, err := openOperator(ctx, log)
	if err != nil {
		return err
	}
	defer a.Close()
	brands := a.Config.Brands()
	if d.Brand == "" && len(brands) == 1 {
		d.Brand = brands[0]
	}
	size := int64(-1)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	ui := &progressUI{w: stderr} // not a regular file (a pipe): plain lines
	if size >= 0 {
		ui = newProgress(stderr, size, "import csv "+*source)
	}
	im := &backfill.Importer{Store: a.Store, Queue: a.Enqueuer, Progress: ui, Wait: *wait, OnRead: ui.done}
	s, err := im.CSV(ctx, ui.reader(f), backfill.CSVOptions{
		Source: *source, Columns: cols, Defaults: d, Brands: brands, Region: a.Config.Policy.PhoneRegion,
		Comma: sep[0], ChunkRows: *chunk, DryRun: *dry,
		Reject: func(line int, reason string) { fmt.Fprintf(out, "line %d: rejected: %s\n", line, reason) },
	})
	ui.done()
	if err != nil && s.Items == 0 {
		return err
	}
	s.Print(out)
	return err
}

// progressUI is how an import shows progress on stderr: plain lines, or,
// when stderr is a terminal, a progress bar (schollz/progressbar) while
// reading, then the plain lines of the wait for the worker.
type progressUI struct {
	bar     *progressbar.ProgressBar
	w       io.Writer
	reading bool
}

// newProgress returns the UI for stderr. total is the size to read in
// bytes (a CSV file), or -1 for a count of items of unknown total (a
// provider).
func newProgress(stderr *os.File, total int64, what string) *progressUI {
	ui := &progressUI{w: stderr}
	if !term.IsTerminal(int(stderr.Fd())) {
		return ui
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription(what),
		progressbar.OptionThrottle(100 * time.Millisecond), progressbar.OptionClearOnFinish(),
	}
	if total >= 0 {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionSetItsString("items"))
	}
	ui.bar, ui.reading = progressbar.NewOptions64(total, opts...), true
	return ui
}

// Write passes progress lines through, except while the bar shows.
func (ui *progressUI) Write(p []byte) (int, error) {
	if ui.reading {
		return len(p), nil
	}
	return ui.w.Write(p)
}

// reader wraps r so that the bar follows the bytes read.
func (ui *progressUI) reader(r io.Reader) io.Reader {
	if ui.bar == nil {
		return r
	}
	pr := progressbar.NewReader(r, ui.bar)
	return &pr
}

// onPage advances an item count bar.
func (ui *progressUI) onPage(items int) {
	if ui.bar != nil && ui.bar.GetMax64() < 0 {
		_ = ui.bar.Add(items)
	}
}

// done ends the bar; later lines are printed.
func (ui *progressUI) done() {
	if ui.bar != nil && ui.reading {
		_ = ui.bar.Finish()
		ui.reading = false
	}
}
