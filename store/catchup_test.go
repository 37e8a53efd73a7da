package store_test

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// TestCatchUpPage pages through every live subject a few at a time: each
// identity set where someone withdrew a covered key comes exactly once,
// whole, in the page of its oldest member (even when the member who
// withdrew sits in another page); the others, and erased subjects, never
// come; the withdrawals are the latest per member of the covered
// keys only (brand, channels, purposes), with their source and reason;
// Suppressed says what the destination already holds; an empty page ends
// the run.
func TestCatchUpPage(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	key, err := st.IdentityKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	n := 0
	appendSig := func(tx *store.Tx, id int64, email, brand, purpose string, status consent.Status, at time.Time, source, event string) int64 {
		t.Helper()
		n++
		sig := consent.Signal{Subject: consent.Subject{Email: email}, Channel: consent.ChannelEmail, Brand: brand,
			Purpose: consent.Purpose(purpose), Status: status, OccurredAt: at, Source: source, Evidence: consent.Evidence{Event: event}}
		ev, err := tx.AppendLedger(ctx, store.LedgerEntry{SubjectID: id, DedupKey: consent.FactKey(sig), Signal: sig,
			RecordedAt: at, Outcome: "applied", Hash: []byte{byte(n)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.PutState(ctx, id, ev, sig); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	ids := map[string]int64{}
	var ginaAliasWithdrawal int64
	err = st.Tx(ctx, func(tx *store.Tx) error {
		for _, e := range []string{"gina.page@gmail.com", "plain1@example.com", "plain2@example.com", "gone@example.com", "plain3@example.com", "ginapage+promo@gmail.com", "plain4@example.com"} {
			id, _, err := tx.EnsureSubject(ctx, consent.Subject{Email: e})
			if err != nil {
				return err
			}
			ids[e] = id
		}
		phone, _, err := tx.EnsureSubject(ctx, consent.Subject{Phone: "+33611223344"})
		if err != nil {
			return err
		}
		ids["+33611223344"] = phone
		if _, err := tx.LinkSubjects(ctx, ids["plain3@example.com"], phone); err != nil {
			return err
		}
		smsSig := consent.Signal{Subject: consent.Subject{Phone: "+33611223344"}, Channel: consent.ChannelSMS, Brand: "acme",
			Purpose: consent.PurposeMarketing, Status: consent.StatusWithdrawn, OccurredAt: base, Source: "form"}
		if _, err := tx.AppendLedger(ctx, store.LedgerEntry{SubjectID: phone, DedupKey: consent.FactKey(smsSig), Signal: smsSig,
			RecordedAt: base, Outcome: "applied", Hash: []byte{99}}); err != nil {
			return err
		}
		appendSig(tx, ids["plain1@example.com"], "plain1@example.com", "acme", "marketing", consent.StatusWithdrawn, base, "form", "")
		appendSig(tx, ids["plain1@example.com"], "plain1@example.com", "acme", "marketing", consent.StatusWithdrawn, base.Add(time.Hour), "mailchimp-acme", "unsubscribe")
		appendSig(tx, ids["plain1@example.com"], "plain1@example.com", "other", "marketing", consent.StatusWithdrawn, base, "form", "")
		appendSig(tx, ids["plain1@example.com"], "plain1@example.com", "acme", "cookies", consent.StatusWithdrawn, base, "form", "")
		appendSig(tx, ids["plain2@example.com"], "plain2@example.com", "acme", "marketing", consent.StatusGranted, base, "form", "")
		ginaAliasWithdrawal = appendSig(tx, ids["ginapage+promo@gmail.com"], "ginapage+promo@gmail.com", "acme", "partners", consent.StatusWithdrawn, base, "form", "")
		appendSig(tx, ids["gone@example.com"], "gone@example.com", "acme", "marketing", consent.StatusWithdrawn, base, "form", "")
		if _, err := tx.AddOutboxRows(ctx, []store.OutboxRow{{Destination: "dest", ConsentEventID: ginaAliasWithdrawal,
			SubjectID: ids["ginapage+promo@gmail.com"], TargetSubjectID: ids["ginapage+promo@gmail.com"],
			Email: sql.NullString{String: "ginapage+promo@gmail.com", Valid: true}, Channel: "email", Brand: "acme", Purpose: "partners"}}); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB.Exec(`UPDATE subjects SET email = NULL, email_original = NULL, erased_at = now() WHERE id = $1`, ids["gone@example.com"]); err != nil {
		t.Fatal(err)
	}

	q := store.CatchUpQuery{Destination: "dest", Brand: "acme", Channels: []string{"email", "sms"}, Purposes: []string{"marketing", "partners"}, Limit: 2}
	seen := map[int64]int{}
	var sets [][]int64
	var ws []store.SetWithdrawal
	suppressed := map[store.TargetKey]time.Time{}
	pages := 0
	for {
		var page store.CatchUpPage
		if err := st.Tx(ctx, func(tx *store.Tx) error {
			var err error
			page, err = tx.CatchUpPage(ctx, key, q)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if page.Read == 0 {
			if page.Next != 0 || len(page.People) != 0 {
				t.Fatalf("empty page: %+v", page)
			}
			break
		}
		if page.Read > q.Limit || page.Next <= q.AfterID {
			t.Fatalf("page after %d: read %d, next %d", q.AfterID, page.Read, page.Next)
		}
		pages++
		for _, p := range page.People {
			if len(p.Facts) != len(p.Members) {
				t.Fatalf("%d facts for %d members", len(p.Facts), len(p.Members))
			}
			if p.Members[0].SubjectID <= q.AfterID || p.Members[0].SubjectID > page.Next {
				t.Errorf("set of %d read in the page (%d, %d]", p.Members[0].SubjectID, q.AfterID, page.Next)
			}
			set := store.SubjectIDs(p.Members)
			sets = append(sets, set)
			for _, id := range set {
				seen[id]++
			}
		}
		ws = append(ws, page.Withdrawals...)
		for k, v := range page.Suppressed {
			suppressed[k] = v
		}
		q.AfterID = page.Next
	}
	if pages != 4 {
		t.Errorf("%d pages for 7 live subjects 2 at a time, want 4", pages)
	}
	for e, id := range ids {
		want := 0
		if e == "plain1@example.com" || strings.HasPrefix(e, "gina") || e == "plain3@example.com" || e == "+33611223344" {
			want = 1
		}
		if seen[id] != want {
			t.Errorf("%s read %d times, want %d", e, seen[id], want)
		}
	}
	gina := []int64{ids["gina.page@gmail.com"], ids["ginapage+promo@gmail.com"]}
	if !slices.ContainsFunc(sets, func(s []int64) bool { return slices.Equal(s, gina) }) {
		t.Errorf("sets %v: want the Gmail mailbox %v as one", sets, gina)
	}
	if len(sets) != 3 {
		t.Errorf("%d sets, want 3 (plain1, the Gmail mailbox, plain3 and its number)", len(sets))
	}
	linked := []int64{ids["plain3@example.com"], ids["+33611223344"]}
	if !slices.ContainsFunc(sets, func(s []int64) bool { return slices.Equal(s, linked) }) {
		t.Errorf("sets %v: want the address and its number %v as one", sets, linked)
	}
	type got struct {
		subject int64
		purpose string
		at      time.Time
		source  string
		reason  string
	}
	var gs []got
	for _, w := range ws {
		if w.Brand != "acme" || w.Purpose == "cookies" {
			t.Errorf("withdrawal of an uncovered key: %+v", w)
		}
		gs = append(gs, got{w.SubjectID, w.Purpose, w.OccurredAt, w.Source, w.Reason})
	}
	want := []got{
		{ids["plain1@example.com"], "marketing", base.Add(time.Hour), "mailchimp-acme", "unsubscribe"},
		{ids["ginapage+promo@gmail.com"], "partners", base, "form", ""},
		{ids["+33611223344"], "marketing", base, "form", ""},
	}
	slices.SortFunc(gs, func(a, b got) int { return int(a.subject - b.subject) })
	slices.SortFunc(want, func(a, b got) int { return int(a.subject - b.subject) })
	if !slices.Equal(gs, want) {
		t.Errorf("withdrawals %+v, want %+v", gs, want)
	}
	k := store.TargetKey{Target: ids["ginapage+promo@gmail.com"], Key: consent.Key{Channel: consent.ChannelEmail, Brand: "acme", Purpose: consent.PurposePartners}}
	if at, ok := suppressed[k]; !ok || !at.Equal(base) || len(suppressed) != 1 {
		t.Errorf("suppressed %v, want only %v at %v", suppressed, k, base)
	}
	if err := st.Tx(ctx, func(tx *store.Tx) error {
		_, err := tx.CatchUpPage(ctx, key, store.CatchUpQuery{Limit: 0})
		return err
	}); err == nil {
		t.Error("a page of 0 subjects was read")
	}
}
