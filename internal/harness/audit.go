package harness

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
)

// ReceiveLog is what the audit reads of a fake provider: the arrival times
// of every accepted push of each address (fakeprovider.Provider has it).
type ReceiveLog interface {
	Received() map[string][]time.Time
}

// Window is a declared outage: between From and To, 503 answers and
// transport errors are expected.
type Window struct {
	Name     string
	From, To time.Time
}

func (w Window) contains(t0, t1 time.Time) bool {
	// A request overlapping the window (started before its end, finished
	// after its start) may have met the outage.
	return !t0.After(w.To) && !t1.Before(w.From)
}

// Audit checks, after a fault test, that nothing acknowledged was lost or
// doubled:
//   - every request answered 202 names an inbound row that is 'processed'
//     (and the same event id always got the same row); no inbound row is
//     left 'received' or 'failed';
//   - the ledger has exactly one row per distinct fact accepted (person,
//     status, time) from FormSource, and no other row from it;
//   - every outbox row is 'sent';
//   - every withdrawn address reached every destination (its receive log),
//     and nothing else did; doubles (an address received more than once)
//     are allowed but counted and reported;
//   - no 5xx answer and no transport error, except 503s and errors during a
//     declared outage Window; no other non-202 answer.
type Audit struct {
	DB *sql.DB
	// Records are every request the test sent (Sender.Records of every
	// sender).
	Records []Record
	// Destinations maps a destination's name to its receive log.
	Destinations map[string]ReceiveLog
	// Outages are the declared outage windows.
	Outages []Window
	// AllowRefused, when set, tolerates refused connections outside the
	// outages (a test that stops its only listener on purpose).
	AllowRefused bool
}

// Report is what the audit found besides its errors.
type Report struct {
	Requests, Accepted, DuplicatesAnswered int
	Status                                 map[int]int
	TransportErrors                        int
	Inbound                                int
	LedgerRows                             int
	Withdrawn                              int
	// Doubles per destination: deliveries beyond the first, summed over
	// addresses; DoubledAddresses how many addresses had any.
	Doubles, DoubledAddresses map[string]int
	OutboxByStatus            map[string]int
}

func (r Report) String() string {
	return fmt.Sprintf("requests=%d accepted=%d (duplicates answered %d) status=%v transport_errors=%d inbound_rows=%d ledger_rows=%d withdrawn_people=%d outbox=%v doubles=%v doubled_addresses=%v",
		r.Requests, r.Accepted, r.DuplicatesAnswered, r.Status, r.TransportErrors, r.Inbound, r.LedgerRows, r.Withdrawn, r.OutboxByStatus, r.Doubles, r.DoubledAddresses)
}

type factKey struct {
	email, status string
	at            int64 // UnixMicro
}

// Check runs the audit and returns its findings, one string per problem
// (empty when everything holds), and the report.
func (a *Audit) Check(ctx context.Context) ([]string, Report) {
	var probs []string
	addf := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	rep := Report{Status: map[int]int{}, Doubles: map[string]int{}, DoubledAddresses: map[string]int{}, OutboxByStatus: map[string]int{}}

	inOutage := func(r Record) bool {
		for _, w := range a.Outages {
			if w.contains(r.Sent, r.Done) {
				return true
			}
		}
		return false
	}
	idOf := map[string]string{} // event id → inbound id
	var ids []int64
	facts := map[factKey]bool{}
	withdrawn := map[string]bool{}
	var badStatus, badErr []string
	for _, r := range a.Records {
		rep.Requests++
		rep.Status[r.Status]++
		if r.Err != nil && r.Status == 0 {
			rep.TransportErrors++
			if !inOutage(r) && !(a.AllowRefused && r.Refused) {
				badErr = append(badErr, fmt.Sprintf("%s at %s (+%s): %v", r.Target, r.Sent.Format("15:04:05.000"), r.Done.Sub(r.Sent).Round(time.Millisecond), r.Err))
			}
			continue
		}
		if !r.Accepted() {
			if !(r.Status == 503 && inOutage(r)) {
				badStatus = append(badStatus, fmt.Sprintf("HTTP %d from %s at %s", r.Status, r.Target, r.Sent.Format("15:04:05.000")))
			}
			continue
		}
		rep.Accepted++
		if r.Duplicate {
			rep.DuplicatesAnswered++
		}
		if r.Err != nil {
			addf("202 without an id: %v", r.Err)
			continue
		}
		if prev, ok := idOf[r.Event.EventID]; ok && prev != r.ID {
			addf("event %s acknowledged as inbound %s and as %s (stored twice)", r.Event.EventID, prev, r.ID)
		}
		idOf[r.Event.EventID] = r.ID
		var id int64
		fmt.Sscan(r.ID, &id)
		ids = append(ids, id)
		facts[factKey{strings.ToLower(r.Event.Email), r.Event.Status(), r.Event.OccurredAt.UnixMicro()}] = true
		if r.Event.Withdraw {
			withdrawn[strings.ToLower(r.Event.Email)] = true
		}
	}
	rep.Withdrawn = len(withdrawn)
	if len(badStatus) > 0 {
		addf("%d unexpected answers (5xx outside a declared outage, or other non-202), first: %s", len(badStatus), strings.Join(first(badStatus, 5), "; "))
	}
	if len(badErr) > 0 {
		addf("%d transport errors outside a declared outage, first: %s", len(badErr), strings.Join(first(badErr, 5), "; "))
	}

	// Inbox.
	rows, err := a.DB.QueryContext(ctx, `SELECT id, status, attempts, coalesce(error, '') FROM inbound_events`)
	if err != nil {
		addf("audit: read inbound_events: %v", err)
		return probs, rep
	}
	status := map[int64]string{}
	var unfinished []string
	for rows.Next() {
		var id int64
		var st, e string
		var att int
		if err := rows.Scan(&id, &st, &att, &e); err != nil {
			addf("audit: %v", err)
			break
		}
		status[id] = st
		if st != "processed" {
			unfinished = append(unfinished, fmt.Sprintf("inbound %d %s (attempts %d) %s", id, st, att, truncate(maskEmails(e), 160)))
		}
	}
	rows.Close()
	rep.Inbound = len(status)
	missing := 0
	for _, id := range ids {
		if _, ok := status[id]; !ok {
			missing++
		}
	}
	if missing > 0 {
		addf("%d acknowledged (202) requests have no inbound row: acknowledged work lost", missing)
	}
	if len(unfinished) > 0 {
		addf("%d inbound rows not processed (of %d), first: %s", len(unfinished), len(status), strings.Join(first(unfinished, 5), "; "))
	}
	if distinct := len(idOf); distinct != len(status) {
		addf("%d distinct events acknowledged but %d inbound rows stored", distinct, len(status))
	}

	// Ledger: one row per fact, none doubled, none unexpected.
	lrows, err := a.DB.QueryContext(ctx, `SELECT coalesce(s.email, ''), ce.status, ce.occurred_at, count(*)
		FROM consent_events ce JOIN subjects s ON s.id = ce.subject_id WHERE ce.source = $1 GROUP BY 1, 2, 3`, FormSource)
	if err != nil {
		addf("audit: read consent_events: %v", err)
		return probs, rep
	}
	seen := map[factKey]bool{}
	var doubled, unexpected []string
	for lrows.Next() {
		var email, st string
		var at time.Time
		var n int
		if err := lrows.Scan(&email, &st, &at, &n); err != nil {
			addf("audit: %v", err)
			break
		}
		rep.LedgerRows += n
		k := factKey{email, st, at.UnixMicro()}
		seen[k] = true
		if n > 1 {
			doubled = append(doubled, fmt.Sprintf("%s fact recorded %d times", st, n))
		}
		if !facts[k] {
			unexpected = append(unexpected, fmt.Sprintf("%s at %s", st, at.Format(time.RFC3339Nano)))
		}
	}
	lrows.Close()
	lost := 0
	for k := range facts {
		if !seen[k] {
			lost++
		}
	}
	if lost > 0 {
		addf("%d acknowledged facts (of %d) missing from the ledger", lost, len(facts))
	}
	if len(doubled) > 0 {
		addf("%d ledger facts doubled, first: %s", len(doubled), strings.Join(first(doubled, 5), "; "))
	}
	if len(unexpected) > 0 {
		addf("%d ledger rows match no acknowledged request, first: %s", len(unexpected), strings.Join(first(unexpected, 5), "; "))
	}

	// Outbox.
	orows, err := a.DB.QueryContext(ctx, `SELECT destination, status, count(*), max(attempts) FROM suppression_outbox GROUP BY 1, 2`)
	if err != nil {
		addf("audit: read suppression_outbox: %v", err)
		return probs, rep
	}
	for orows.Next() {
		var d, st string
		var n, att int
		if err := orows.Scan(&d, &st, &n, &att); err != nil {
			addf("audit: %v", err)
			break
		}
		rep.OutboxByStatus[d+"/"+st] += n
		if st != "sent" {
			addf("%d outbox rows of %s are %s (max attempts %d)", n, d, st, att)
		}
	}
	orows.Close()

	// Destinations.
	names := make([]string, 0, len(a.Destinations))
	for n := range a.Destinations {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		got := map[string]int{}
		for addr, times := range a.Destinations[name].Received() {
			got[strings.ToLower(addr)] += len(times)
		}
		notReached := 0
		for e := range withdrawn {
			if got[e] == 0 {
				notReached++
			}
		}
		if notReached > 0 {
			addf("%d of %d withdrawn addresses never reached %s", notReached, len(withdrawn), name)
		}
		extra := 0
		for addr, n := range got {
			if !withdrawn[addr] {
				extra++
			}
			if n > 1 {
				rep.Doubles[name] += n - 1
				rep.DoubledAddresses[name]++
			}
		}
		if extra > 0 {
			addf("%d addresses suppressed at %s without an acknowledged withdrawal", extra, name)
		}
	}
	return probs, rep
}

// Run runs Check and reports every problem with t.Errorf, and the report
// (doubles included) with t.Logf.
func (a *Audit) Run(t testing.TB) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	probs, rep := a.Check(ctx)
	t.Logf("audit: %s", rep)
	for _, p := range probs {
		t.Errorf("audit: %s", p)
	}
	return rep
}

// Backlog is what is still to do: inbound rows not yet processed (or
// failed), outbox rows pending (and failed), per destination.
type Backlog struct {
	InboundReceived, InboundFailed int
	OutboxPending, OutboxFailed    map[string]int
	// Leased is pending outbox rows whose lease has not ended, with the
	// latest lease end.
	Leased    int
	LeaseEnds time.Time
}

// Empty reports whether nothing is left to do (failed rows count as left).
func (b Backlog) Empty() bool {
	return b.InboundReceived == 0 && b.InboundFailed == 0 && len(b.OutboxPending) == 0 && len(b.OutboxFailed) == 0
}

func (b Backlog) String() string {
	s := fmt.Sprintf("inbound received=%d failed=%d; outbox pending=%v failed=%v", b.InboundReceived, b.InboundFailed, b.OutboxPending, b.OutboxFailed)
	if b.Leased > 0 {
		s += fmt.Sprintf("; %d pending rows leased until %s", b.Leased, b.LeaseEnds.Format(time.RFC3339))
	}
	return s
}

// ReadBacklog reads the backlog from Postgres.
func ReadBacklog(ctx context.Context, db *sql.DB) (Backlog, error) {
	b := Backlog{OutboxPending: map[string]int{}, OutboxFailed: map[string]int{}}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE status = 'received'), count(*) FILTER (WHERE status = 'failed') FROM inbound_events`).
		Scan(&b.InboundReceived, &b.InboundFailed); err != nil {
		return b, err
	}
	rows, err := db.QueryContext(ctx, `SELECT destination, status, count(*) FROM suppression_outbox WHERE status <> 'sent' GROUP BY 1, 2`)
	if err != nil {
		return b, err
	}
	defer rows.Close()
	for rows.Next() {
		var d, st string
		var n int
		if err := rows.Scan(&d, &st, &n); err != nil {
			return b, err
		}
		if st == "pending" {
			b.OutboxPending[d] = n
		} else {
			b.OutboxFailed[d] = n
		}
	}
	if err := rows.Err(); err != nil {
		return b, err
	}
	var ends pq.NullTime
	if err := db.QueryRowContext(ctx, `SELECT count(*), max(lease_until) FROM suppression_outbox WHERE status = 'pending' AND lease_until > now()`).
		Scan(&b.Leased, &ends); err != nil {
		return b, err
	}
	b.LeaseEnds = ends.Time
	return b, nil
}

// Delivered reports which of emails every log has received at least once:
// it returns the number missing per destination (empty when all arrived).
func Delivered(emails []string, logs map[string]ReceiveLog) map[string]int {
	out := map[string]int{}
	for name, l := range logs {
		got := map[string]bool{}
		for addr := range l.Received() {
			got[strings.ToLower(addr)] = true
		}
		for _, e := range emails {
			if !got[strings.ToLower(e)] {
				out[name]++
			}
		}
	}
	return out
}

// WithdrawnEmails returns the distinct addresses of accepted withdrawals in
// records.
func WithdrawnEmails(records []Record) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range records {
		if r.Accepted() && r.Event.Withdraw && !seen[r.Event.Email] {
			seen[r.Event.Email] = true
			out = append(out, r.Event.Email)
		}
	}
	return out
}

// WaitDone waits until every accepted request of records is processed,
// the outbox has nothing pending or failed, and every accepted withdrawal
// reached every destination of logs. It returns how long that took, or an
// error saying what was still left at timeout.
func WaitDone(ctx context.Context, db *sql.DB, records []Record, logs map[string]ReceiveLog, timeout time.Duration) (time.Duration, error) {
	emails := WithdrawnEmails(records)
	return Eventually(ctx, timeout, 200*time.Millisecond, func(ctx context.Context) error {
		b, err := ReadBacklog(ctx, db)
		if err != nil {
			return fmt.Errorf("read backlog: %w", err)
		}
		miss := Delivered(emails, logs)
		if b.Empty() && len(miss) == 0 {
			return nil
		}
		return fmt.Errorf("left: %s; withdrawn addresses not yet at a destination: %v (of %d)", b, miss, len(emails))
	})
}

// emailRE finds what looks like an email address.
var emailRE = regexp.MustCompile(`[^\s"'<>@,;:]+@[^\s"'<>@,;:]+`)

// maskEmails replaces addresses in a stored error text before it is
// printed: test logs carry no address.
func maskEmails(s string) string { return emailRE.ReplaceAllString(s, "<email>") }

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
