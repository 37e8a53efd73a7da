package consent

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCanonicalTime(t *testing.T) {
	in := time.Date(2025, 3, 14, 10, 26, 53, 589793999, time.FixedZone("CET", 3600))
	got := CanonicalTime(in)
	if got.Location() != time.UTC || got.Nanosecond() != 589793000 || !got.Equal(in.Truncate(time.Microsecond)) {
		t.Errorf("CanonicalTime = %v", got)
	}
	if CanonicalTime(got) != got {
		t.Error("not idempotent")
	}
}

func TestFactKey(t *testing.T) {
	base := grant(t0) // t0 is a whole microsecond
	k := FactKey(base)
	if len(k) != 32 {
		t.Fatalf("FactKey is %d bytes", len(k))
	}

	pre := true
	confirmed := t0.Add(time.Hour)
	for _, tc := range []struct {
		name   string
		mutate func(*Signal)
	}{
		{"evidence", func(s *Signal) {
			s.Evidence = Evidence{EventID: "evt-2", Event: "retry", IP: "192.0.2.1", UserAgent: "x", Checkbox: "on",
				PreTicked: &pre, ConfirmedAt: &confirmed, WordingVersion: "v2"}
		}},
		{"source", func(s *Signal) { s.Source = "other-source" }},
		{"problems", func(s *Signal) { s.Problems = []string{"x"} }},
		{"original spelling", func(s *Signal) { s.Subject.EmailOriginal = "A@B.fr" }},
		{"phone beside the email", func(s *Signal) { s.Subject.Phone = "+33612345678" }},
		{"external id beside the email", func(s *Signal) { s.Subject.ExternalID = "hubspot:contact:1" }},
		{"same instant in another zone", func(s *Signal) { s.OccurredAt = t0.In(time.FixedZone("CET", 3600)) }},
		{"1ns later", func(s *Signal) { s.OccurredAt = t0.Add(time.Nanosecond) }},
		{"999ns later", func(s *Signal) { s.OccurredAt = t0.Add(999 * time.Nanosecond) }},
	} {
		s := base
		tc.mutate(&s)
		if got := FactKey(s); !bytes.Equal(got, k) {
			t.Errorf("%s changed the fact key", tc.name)
		}
	}

	seen := map[string]string{hex.EncodeToString(k): "base"}
	for _, tc := range []struct {
		name   string
		mutate func(*Signal)
	}{
		{"email", func(s *Signal) { s.Subject.Email = "c@b.fr" }},
		{"subject key by phone", func(s *Signal) { s.Subject = Subject{Phone: "+33612345678"} }},
		{"subject key by external id", func(s *Signal) { s.Subject = Subject{ExternalID: "a@b.fr "} }},
		{"channel", func(s *Signal) { s.Channel = ChannelSMS }},
		{"brand", func(s *Signal) { s.Brand = "acme-fr" }},
		{"purpose", func(s *Signal) { s.Purpose = PurposePartners }},
		{"status withdrawn", func(s *Signal) { s.Status = StatusWithdrawn }},
		{"status pending", func(s *Signal) { s.Status = StatusPending }},
		{"1µs later", func(s *Signal) { s.OccurredAt = t0.Add(time.Microsecond) }},
		{"1µs earlier", func(s *Signal) { s.OccurredAt = t0.Add(-time.Microsecond) }},
		{"1s later", func(s *Signal) { s.OccurredAt = t0.Add(time.Second) }},
		{"before 1970", func(s *Signal) { s.OccurredAt = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC) }},
		// Fields are length-prefixed: moving bytes between them changes the key.
		{"brand/purpose boundary", func(s *Signal) { s.Brand = "acmem"; s.Purpose = "arketing" }},
		{"empty brand", func(s *Signal) { s.Brand = "" }},
	} {
		s := base
		tc.mutate(&s)
		h := hex.EncodeToString(FactKey(s))
		if prev, dup := seen[h]; dup {
			t.Errorf("%s: same fact key as %s", tc.name, prev)
		}
		seen[h] = tc.name
	}
}

func ledgerSignal() Signal {
	s := with(grant(t0.Add(789*time.Nanosecond)), StatusGranted, "wording version unknown")
	pre := false
	confirmed := time.Date(2025, 3, 14, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
	s.Evidence = Evidence{
		EventID: "evt-1", Event: "form_submit", FormID: "f1", ListID: "l1", Field: "newsletter",
		WordingVersion: "v3", WordingHash: "sha256:abc", PageURL: "https://example.com/signup?a=1&b=<2>",
		IP: "2001:db8::1", UserAgent: "Mozilla/5.0 \u2028 «é» \"q\"", Checkbox: "on", PreTicked: &pre,
		OptInLevel: "confirmed_opt_in", ConfirmedAt: &confirmed,
	}
	return s
}

func TestNewLedgerRecord(t *testing.T) {
	s := ledgerSignal()
	r := NewLedgerRecord(42, 7, s, "applied")
	if r.SubjectID != 42 || r.InboundID != 7 || r.Outcome != "applied" || r.Source != s.Source ||
		r.Channel != s.Channel || r.Brand != s.Brand || r.Purpose != s.Purpose || r.Status != s.Status ||
		r.Valid != s.Valid() || !reflect.DeepEqual(r.Problems, s.Problems) ||
		r.EvidenceHash != hex.EncodeToString(EvidenceHash(s.Evidence)) {
		t.Errorf("record = %+v", r)
	}
	if r.FactKey != hex.EncodeToString(FactKey(s)) {
		t.Error("fact key is not the hex of FactKey")
	}
	if !r.OccurredAt.Equal(CanonicalTime(s.OccurredAt)) || r.OccurredAt.Location() != time.UTC {
		t.Errorf("occurred_at = %v, want it at µs in UTC", r.OccurredAt)
	}
	if r := NewLedgerRecord(1, 0, grant(t0), "applied"); r.Problems == nil || len(r.Problems) != 0 {
		t.Errorf("nil problems recorded as %#v, want []", r.Problems)
	}
}

func TestChainHashChangesWithEveryField(t *testing.T) {
	base := NewLedgerRecord(42, 7, ledgerSignal(), "applied")
	prev := bytes.Repeat([]byte{1}, 32)
	h := ChainHash(prev, base)
	if len(h) != 32 {
		t.Fatalf("hash is %d bytes", len(h))
	}
	if !bytes.Equal(ChainHash(prev, base), h) {
		t.Fatal("not deterministic")
	}

	// Every field of the record is covered: set each one to a different
	// value and the hash must change.
	check := func(name string, r LedgerRecord) {
		t.Helper()
		if bytes.Equal(ChainHash(prev, r), h) {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	rv := reflect.ValueOf(base)
	for i := range rv.NumField() {
		r := base
		changeField(t, reflect.ValueOf(&r).Elem().Field(i))
		check(rv.Type().Field(i).Name, r)
	}
	// Nil versus empty is a change too (NewLedgerRecord always uses []).
	r := base
	r.Problems = nil
	check("Problems to nil", r)

	for _, p := range [][]byte{nil, {}, bytes.Repeat([]byte{2}, 32), prev[:31]} {
		if bytes.Equal(ChainHash(p, base), h) {
			t.Errorf("prev %x gives the same hash", p)
		}
	}
	if !bytes.Equal(ChainHash(nil, base), ChainHash([]byte{}, base)) {
		t.Error("nil and empty prev differ")
	}
}

func TestEvidenceHashChangesWithEveryField(t *testing.T) {
	base := ledgerSignal().Evidence
	h := EvidenceHash(base)
	if len(h) != 32 || !bytes.Equal(EvidenceHash(base), h) {
		t.Fatal("not a deterministic sha256")
	}
	ev := reflect.ValueOf(base)
	for j := range ev.NumField() {
		e := base
		changeField(t, reflect.ValueOf(&e).Elem().Field(j))
		if bytes.Equal(EvidenceHash(e), h) {
			t.Errorf("changing Evidence.%s does not change the hash", ev.Type().Field(j).Name)
		}
	}
	e := base
	e.PreTicked = nil
	if bytes.Equal(EvidenceHash(e), h) {
		t.Error("PreTicked false and unset hash the same")
	}
	if bytes.Equal(EvidenceHash(Evidence{}), h) {
		t.Error("empty evidence hashes like full evidence")
	}
	// A record's chain hash follows its evidence.
	s := ledgerSignal()
	r1 := NewLedgerRecord(1, 1, s, "applied")
	s.Evidence.IP = "192.0.2.99"
	if r2 := NewLedgerRecord(1, 1, s, "applied"); bytes.Equal(ChainHash(nil, r1), ChainHash(nil, r2)) {
		t.Error("changing the evidence does not change the chain hash")
	}
}

// changeField sets v to a value different from its current one.
func changeField(t *testing.T, v reflect.Value) {
	t.Helper()
	switch x := v.Interface().(type) {
	case string:
		v.SetString(x + "!")
	case Channel, Purpose, Status:
		v.SetString(v.String() + "!")
	case int64:
		v.SetInt(x + 1)
	case bool:
		v.SetBool(!x)
	case []string:
		v.Set(reflect.ValueOf(append(cloneStrings(x), "another problem")))
	case time.Time:
		v.Set(reflect.ValueOf(x.Add(time.Microsecond)))
	case *bool:
		b := x == nil || !*x
		v.Set(reflect.ValueOf(&b))
	case *time.Time:
		n := t0
		if x != nil {
			n = x.Add(time.Microsecond)
		}
		v.Set(reflect.ValueOf(&n))
	case Quality:
		q := append(Quality(nil), x...)
		q = append(q, Assessment{Criterion: CriterionInformed, Verdict: Pass, Reason: "changed"})
		v.Set(reflect.ValueOf(q))
	default:
		t.Fatalf("no way to change a %T: add it to changeField", x)
	}
}

func cloneStrings(s []string) []string { return append([]string(nil), s...) }

// The hashes can be recomputed from the stored row: a JSON round trip (and
// the key reordering of a jsonb column) of the record and of its evidence
// gives the same hashes.
func TestHashesJSONRoundTrip(t *testing.T) {
	dirtySig := ledgerSignal()
	dirtySig.Evidence.UserAgent = "bad\xff\x00ua"
	dirtySig.Problems = []string{"x\xfe"}
	preTicked := func() Signal { s := ledgerSignal(); b := true; s.Evidence.PreTicked = &b; return s }()
	for name, sig := range map[string]Signal{
		"full evidence":      ledgerSignal(),
		"no evidence":        grant(t0),
		"pre-ticked true":    preTicked,
		"cleaned dirty text": dirtySig.Clean(),
		"withdrawal":         with(grant(t0), StatusWithdrawn),
	} {
		t.Run(name, func(t *testing.T) {
			prev := []byte("previous hash")
			rec := NewLedgerRecord(1<<62, 1<<53+1, sig, "applied")
			want := ChainHash(prev, rec)
			var back LedgerRecord
			roundTrip(t, rec, &back)
			if got := ChainHash(prev, back); !bytes.Equal(got, want) {
				t.Errorf("record round trip changed the chain hash\n before %s\n after  %s", mustJSON(rec), mustJSON(back))
			}

			wantEv := EvidenceHash(sig.Evidence)
			var ev Evidence
			roundTrip(t, sig.Evidence, &ev)
			if got := EvidenceHash(ev); !bytes.Equal(got, wantEv) {
				t.Errorf("evidence round trip changed its hash\n before %s\n after  %s", mustJSON(sig.Evidence), mustJSON(ev))
			}
			if hex.EncodeToString(EvidenceHash(ev)) != rec.EvidenceHash {
				t.Error("stored evidence does not match the record's evidence_hash")
			}
			if c := sig.Evidence.ConfirmedAt; c != nil && (ev.ConfirmedAt == nil || !ev.ConfirmedAt.Equal(*c)) {
				t.Error("confirmed_at lost")
			}
			if p := sig.Evidence.PreTicked; (p == nil) != (ev.PreTicked == nil) || p != nil && *p != *ev.PreTicked {
				t.Error("pre_ticked lost")
			}
		})
	}
}

// roundTrip encodes v, decodes it as a jsonb column would give it back
// (numbers exact, keys reordered) and decodes that into out.
func roundTrip(t *testing.T, v, out any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		t.Fatal(err)
	}
	reordered, err := json.Marshal(generic) // map keys come out sorted
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(reordered, out); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
