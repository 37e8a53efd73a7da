package backfill

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/imported"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/testenv"
	"github.com/consentsync/consentsync/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.DropTemplate()
	os.Exit(code)
}

// pages is a Lister over fixed pages; cursors are page numbers. fail, when
// set, answers instead of the page of that cursor (once).
type pages struct {
	items [][]connectors.Listed
	asked []string
	fail  map[string]error
}

func (p *pages) List(_ context.Context, cursor string) ([]connectors.Listed, string, error) {
	p.asked = append(p.asked, cursor)
	if err, ok := p.fail[cursor]; ok {
		delete(p.fail, cursor)
		return nil, "", err
	}
	i := 0
	if cursor != "" {
		i = int(cursor[0] - '0')
	}
	next := ""
	if i+1 < len(p.items) {
		next = string(rune('0' + i + 1))
	}
	return p.items[i], next, nil
}

func newImporter(t *testing.T) (*Importer, *store.Store) {
	t.Helper()
	st := testenv.Store(t)
	return &Importer{Store: st}, st
}

var dest = config.Destination{Name: "esp-acme", Kind: "sendgrid", Brand: "acme", Channels: []string{"email"}, Purposes: []string{"marketing", "partners"}}

// TestProviderInterruptedAndFailed: a run cut by a cancelled context keeps
// its cursor and is resumed at that page; a 429 is slept for the delay the
// provider gave and the page asked again; a permanent refusal ends the run
// as failed, and the next run starts over.
func TestProviderInterruptedAndFailed(t *testing.T) {
	t.Parallel()
	im, st := newImporter(t)
	at := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &pages{items: [][]connectors.Listed{
		{{Email: "a@example.com", At: at, Reason: "global_unsubscribe"}},
		{{Email: "b@example.com", At: at}},
		{{Email: "c@example.com"}},
	}, fail: map[string]error{"1": &connectors.RetryAfterError{Delay: 3 * time.Second, Err: errors.New("HTTP 429")}}}
	// The 429 on page 2 is slept, and ^C arrives during the sleep.
	ctx, cancel := context.WithCancel(context.Background())
	var slept []time.Duration
	sleepThenCancel := func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		cancel()
		return context.Canceled
	}
	_, err := im.Provider(ctx, l, ProviderOptions{Destination: dest, Sleep: sleepThenCancel})
	if !errors.Is(err, context.Canceled) || len(slept) != 1 || slept[0] != 3*time.Second {
		t.Fatalf("interrupted run: %v, slept %v", err, slept)
	}
	var cursor, status string
	if err := st.DB.QueryRow(`SELECT cursor, status FROM import_runs`).Scan(&cursor, &status); err != nil || cursor != "1" || status != store.ImportRunning {
		t.Fatalf("after the interruption: cursor %q status %q (%v)", cursor, status, err)
	}
	l.asked = nil
	s, err := im.Provider(context.Background(), l, ProviderOptions{Destination: dest})
	if err != nil || !s.Resumed || strings.Join(l.asked, ",") != "1,2" || s.Pages != 3 || s.Withdrawals != 4 {
		t.Fatalf("resumed: %v %+v asked %q", err, s, l.asked)
	}
	// Three pages, each an inbox row of kind import from esp-acme.
	var n int
	if err := st.DB.Get(&n, `SELECT count(*) FROM inbound_events WHERE kind = $1 AND source = 'esp-acme'`, imported.Kind); err != nil || n != 3 {
		t.Fatalf("%d inbox rows (%v)", n, err)
	}

	l.fail = map[string]error{"": connectors.Permanent("sendgrid: HTTP 401")}
	if _, err := im.Provider(context.Background(), l, ProviderOptions{Destination: dest}); !errors.Is(err, connectors.ErrPermanent) {
		t.Fatalf("refused: %v", err)
	}
	if err := st.DB.Get(&status, `SELECT status FROM import_runs ORDER BY id DESC LIMIT 1`); err != nil || status != store.ImportFailed {
		t.Fatalf("refused run is %q (%v)", status, err)
	}
	l.asked = nil
	s, err = im.Provider(context.Background(), l, ProviderOptions{Destination: dest})
	if err != nil || s.Resumed || l.asked[0] != "" || s.DuplicatePages != 3 || s.InboxRows != 0 {
		t.Fatalf("after a failed run: %v %+v asked %q", err, s, l.asked)
	}
}

// TestWithdrawals: each item is a withdrawal per channel and purpose the
// destination honours (an item's own purpose narrows it), dated by the
// provider, else the first import, never later than now; an item without
// a usable address or a channel of the destination is rejected.
func TestWithdrawals(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	first := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	d := config.Destination{Name: "brevo-acme", Brand: "acme", Channels: []string{"email", "sms"}, Purposes: []string{"marketing", "partners"}}
	page := []connectors.Listed{
		{Email: "A@Example.com", At: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC), Reason: "blocklisted"},
		{Email: "b@example.com", Purpose: consent.PurposePartners},
		{Phone: "+33612345678", At: now.Add(time.Hour)},
		{Email: "not an address"},
		{Email: "c@example.com", Purpose: consent.PurposeCookies},
	}
	sigs, rejected := Withdrawals(page, d, "imported from brevo-acme at 2026-06-01T12:00:00Z", first, now)
	var got []string
	for _, s := range sigs {
		got = append(got, s.Subject.Email+s.Subject.Phone+" "+string(s.Channel)+" "+string(s.Purpose)+" "+s.OccurredAt.Format(time.RFC3339)+" "+s.Evidence.Event)
		if s.Status != consent.StatusWithdrawn || s.Source != "brevo-acme" || s.Brand != "acme" || s.Evidence.Imported == "" {
			t.Errorf("signal %+v", s)
		}
	}
	want := []string{
		"A@Example.com email marketing 2019-01-01T00:00:00Z blocklisted",
		"A@Example.com email partners 2019-01-01T00:00:00Z blocklisted",
		"b@example.com email partners 2026-05-01T00:00:00Z ",
		"+33612345678 sms marketing 2026-06-01T12:00:00Z ",
		"+33612345678 sms partners 2026-06-01T12:00:00Z ",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("signals:\n got %q\nwant %q", got, want)
	}
	if strings.Join(rejected, "|") != "item 3: bad email|item 4: no channel or purpose of the destination covers it" {
		t.Errorf("rejected %q", rejected)
	}
}

// TestProviderSkipsEchoes: importing from a destination after go-live
// leaves out the addresses consentsync itself told it to suppress (their
// newest row there is a suppression, pending or sent); an address whose
// suppression was lifted since, or refused for good, or pushed only to
// another destination, or never pushed, is imported.
func TestProviderSkipsEchoes(t *testing.T) {
	t.Parallel()
	im, st := newImporter(t)
	ctx := context.Background()
	row := func(email, destination, action, status string) {
		t.Helper()
		var event int64
		err := st.Tx(ctx, func(tx *store.Tx) error {
			id, _, err := tx.EnsureSubject(ctx, consent.Subject{Email: email})
			if err != nil {
				return err
			}
			sig := consent.Signal{Subject: consent.Subject{Email: email}, Channel: consent.ChannelEmail, Brand: "acme", Purpose: consent.PurposeMarketing,
				Status: consent.StatusWithdrawn, OccurredAt: time.Now().UTC().Add(time.Duration(len(action)+len(status)) * time.Second), Source: "form"}
			event, err = tx.AppendLedger(ctx, store.LedgerEntry{SubjectID: id, DedupKey: append(consent.FactKey(sig), destination+action...), Signal: sig,
				RecordedAt: time.Now().UTC(), Outcome: "applied", Hash: []byte(email + action)})
			if err != nil {
				return err
			}
			_, err = tx.AddOutbox(ctx, store.OutboxRow{Destination: destination, ConsentEventID: event, SubjectID: id, TargetSubjectID: id,
				Action: action, Email: sql.NullString{String: email, Valid: true}, Channel: "email", Brand: "acme", Purpose: "marketing"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = $1 WHERE consent_event_id = $2 AND destination = $3`, status, event, destination); err != nil {
			t.Fatal(err)
		}
	}
	row("pushed@example.com", dest.Name, store.OutboxSuppress, "sent")
	row("queued@example.com", dest.Name, store.OutboxSuppress, "pending")
	row("lifted@example.com", dest.Name, store.OutboxSuppress, "sent")
	row("lifted@example.com", dest.Name, store.OutboxLift, "sent")
	row("refused@example.com", dest.Name, store.OutboxSuppress, "failed")
	row("elsewhere@example.com", "crm-acme", store.OutboxSuppress, "sent")
	l := &pages{items: [][]connectors.Listed{{
		{Email: "Pushed@Example.com"}, {Email: "queued@example.com"}, {Email: "lifted@example.com"},
		{Email: "refused@example.com"}, {Email: "elsewhere@example.com"}, {Email: "new@example.com"},
	}}}
	s, err := im.Provider(ctx, l, ProviderOptions{Destination: dest})
	if err != nil {
		t.Fatal(err)
	}
	// Two purposes per item: pushed@ and queued@ are echoes (4 signals).
	if s.Echoes != 4 || s.Withdrawals != 8 {
		t.Fatalf("echoes %d, withdrawals %d; want 4 and 8", s.Echoes, s.Withdrawals)
	}
	var body []byte
	if err := st.DB.Get(&body, `SELECT body FROM inbound_events WHERE kind = $1`, imported.Kind); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"pushed@", "queued@"} {
		if strings.Contains(strings.ToLower(string(body)), e) {
			t.Errorf("the imported page holds %s, an echo of our own push", e)
		}
	}
	for _, e := range []string{"lifted@", "refused@", "elsewhere@", "new@"} {
		if !strings.Contains(string(body), e) {
			t.Errorf("the imported page lacks %s", e)
		}
	}
}

// TestProviderEchoesByChannelAndLift: an echo is our push on the
// withdrawal's own channel. A contact whose number's SMS suppression
// consentsync pushed, read back with its address and number blocklisted,
// is an echo on SMS only: the email withdrawal is the provider's own,
// imported. A suppression whose lift is queued or that the provider
// refused to lift is still ours at the provider: an echo, not a new
// withdrawal dated at the import that would displace the opt-in.
func TestProviderEchoesByChannelAndLift(t *testing.T) {
	t.Parallel()
	im, st := newImporter(t)
	ctx := context.Background()
	brevo := config.Destination{Name: "brevo-acme", Kind: "brevo", Brand: "acme", Channels: []string{"email", "sms"}, Purposes: []string{"marketing"}}
	row := func(sub consent.Subject, channel consent.Channel, action, status string) {
		t.Helper()
		outboxRow(t, st, brevo.Name, sub, channel, consent.PurposeMarketing, action, status)
	}
	both := consent.Subject{Email: "both@example.com", Phone: "+33612345678"}
	row(consent.Subject{Phone: both.Phone}, consent.ChannelSMS, store.OutboxSuppress, store.OutboxSent)
	refused := consent.Subject{Email: "refused-lift@example.com"}
	row(refused, consent.ChannelEmail, store.OutboxSuppress, store.OutboxSent)
	row(refused, consent.ChannelEmail, store.OutboxLift, store.OutboxFailed)
	queued := consent.Subject{Email: "queued-lift@example.com"}
	row(queued, consent.ChannelEmail, store.OutboxSuppress, store.OutboxSent)
	row(queued, consent.ChannelEmail, store.OutboxLift, store.OutboxPending)
	l := &pages{items: [][]connectors.Listed{{
		{Email: both.Email, Phone: both.Phone}, {Email: refused.Email}, {Email: queued.Email},
	}}}
	s, err := im.Provider(ctx, l, ProviderOptions{Destination: brevo})
	if err != nil {
		t.Fatal(err)
	}
	// both@'s SMS, refused-lift@ and queued-lift@ are echoes; both@'s
	// email is new.
	if s.Echoes != 3 || s.Withdrawals != 1 {
		t.Fatalf("echoes %d, withdrawals %d; want 3 and 1", s.Echoes, s.Withdrawals)
	}
	var body []byte
	if err := st.DB.Get(&body, `SELECT body FROM inbound_events WHERE kind = $1`, imported.Kind); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), both.Email) || strings.Contains(string(body), "-lift@") {
		t.Errorf("imported page %s: want both@'s email withdrawal only", body)
	}
}

var outboxRows atomic.Int64

// outboxRow records a withdrawal of sub and its outbox row at destination
// (channel, purpose, action), set to status.
func outboxRow(t *testing.T, st *store.Store, destination string, sub consent.Subject, channel consent.Channel, purpose consent.Purpose, action, status string) {
	t.Helper()
	ctx := context.Background()
	n := outboxRows.Add(1)
	var event int64
	err := st.Tx(ctx, func(tx *store.Tx) error {
		id, _, err := tx.EnsureSubject(ctx, sub)
		if err != nil {
			return err
		}
		sig := consent.Signal{Subject: sub, Channel: channel, Brand: "acme", Purpose: purpose,
			Status: consent.StatusWithdrawn, OccurredAt: time.Now().UTC().Add(time.Duration(n) * time.Second), Source: "form"}
		event, err = tx.AppendLedger(ctx, store.LedgerEntry{SubjectID: id, DedupKey: consent.FactKey(sig), Signal: sig,
			RecordedAt: time.Now().UTC(), Outcome: "applied", Hash: []byte(fmt.Sprint(n))})
		if err != nil {
			return err
		}
		r := store.OutboxRow{Destination: destination, ConsentEventID: event, SubjectID: id, TargetSubjectID: id,
			Action: action, Channel: string(channel), Brand: "acme", Purpose: string(purpose)}
		if channel == consent.ChannelEmail {
			r.Email = sql.NullString{String: sub.Email, Valid: true}
		} else {
			r.Phone = sql.NullString{String: sub.Phone, Valid: true}
		}
		_, err = tx.AddOutbox(ctx, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = $1 WHERE consent_event_id = $2`, status, event); err != nil {
		t.Fatal(err)
	}
}

// TestProviderEchoesByPurpose: a withdrawal the provider narrows to one
// purpose (a SendGrid group) echoes our push of that purpose only: a
// person whose partners suppression consentsync pushed, who then leaves
// the marketing group at the provider, has that withdrawal imported; a
// withdrawal of the whole contact (a global unsubscribe) echoes our push
// of any purpose.
func TestProviderEchoesByPurpose(t *testing.T) {
	t.Parallel()
	im, st := newImporter(t)
	for _, e := range []string{"group@example.com", "global@example.com"} {
		outboxRow(t, st, dest.Name, consent.Subject{Email: e}, consent.ChannelEmail, consent.PurposePartners, store.OutboxSuppress, store.OutboxSent)
	}
	l := &pages{items: [][]connectors.Listed{{
		{Email: "group@example.com", Purpose: consent.PurposeMarketing, Reason: "group_unsubscribe"},
		{Email: "group@example.com", Purpose: consent.PurposePartners, Reason: "group_unsubscribe"},
		{Email: "global@example.com", Reason: "global_unsubscribe"},
	}}}
	s, err := im.Provider(context.Background(), l, ProviderOptions{Destination: dest})
	if err != nil {
		t.Fatal(err)
	}
	if s.Echoes != 3 || s.Withdrawals != 1 {
		t.Fatalf("echoes %d, withdrawals %d; want 3 (group@ partners, global@ both) and 1 (group@ marketing)", s.Echoes, s.Withdrawals)
	}
	var body string
	if err := st.DB.Get(&body, `SELECT body FROM inbound_events WHERE kind = $1`, imported.Kind); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "group@example.com") || strings.Contains(body, "global@") {
		t.Errorf("imported page %s: want group@'s marketing withdrawal only", body)
	}
}
