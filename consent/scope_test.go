package consent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestExpandScope(t *testing.T) {
	at := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	w := Signal{Subject: Subject{Email: dcPerson}, Channel: ChannelEmail, Brand: "beta", Purpose: PurposeMarketing,
		Status: StatusWithdrawn, OccurredAt: at, Source: "prefs", Evidence: Evidence{Event: "unsubscribe_all", PageURL: "https://x/prefs"},
		Scope: ScopeAllBrands}
	brandsOf := func(ss []Signal) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Brand)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		sig    Signal
		brands []string
		want   []string
	}{
		{"every brand, sorted, own brand included", w, []string{"gamma", "acme"}, []string{"acme", "beta", "gamma"}},
		{"duplicates and empty names dropped", w, []string{"acme", "", "beta", "acme"}, []string{"acme", "beta"}},
		{"no list: own brand", w, nil, []string{"beta"}},
		{"brand scope unchanged", func() Signal { s := w; s.Scope = ScopeBrand; return s }(), []string{"acme"}, []string{"beta"}},
		{"empty scope unchanged", func() Signal { s := w; s.Scope = ""; return s }(), []string{"acme"}, []string{"beta"}},
		{"all-brands grant unchanged", func() Signal { s := w; s.Status = StatusGranted; return s }(), []string{"acme"}, []string{"beta"}},
		{"all-brands pending unchanged", func() Signal { s := w; s.Status = StatusPending; return s }(), []string{"acme"}, []string{"beta"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ExpandScope(tc.sig, tc.brands)
			if b := brandsOf(got); !slices.Equal(b, tc.want) {
				t.Fatalf("brands %v, want %v", b, tc.want)
			}
			keys := map[string]bool{}
			for _, s := range got {
				c := s
				c.Brand = tc.sig.Brand
				if !reflect.DeepEqual(c, tc.sig) {
					t.Errorf("copy differs beyond its brand: %+v", s)
				}
				keys[hex.EncodeToString(FactKey(s))] = true
			}
			if len(keys) != len(got) {
				t.Errorf("%d fact keys for %d brands", len(keys), len(got))
			}
		})
	}
	if len(ExpandScope(Signal{Status: StatusWithdrawn, Scope: ScopeAllBrands}, nil)) != 0 {
		t.Error("a brandless signal with an empty list expanded to something")
	}
}

func TestScopeValidateAndJSON(t *testing.T) {
	s := grant(t0)
	for _, sc := range []Scope{"", ScopeBrand, ScopeAllBrands} {
		s.Scope = sc
		if err := s.Validate(); err != nil {
			t.Errorf("scope %q: %v", sc, err)
		}
	}
	s.Scope = "everything"
	if err := s.Validate(); err == nil {
		t.Error("unknown scope accepted")
	}
	s.Scope = ""
	b, _ := json.Marshal(s)
	if bytes.Contains(b, []byte("scope")) {
		t.Errorf("empty scope written: %s", b)
	}
	s.Scope = ScopeAllBrands
	b, _ = json.Marshal(s)
	if !bytes.Contains(b, []byte(`"scope":"all_brands"`)) {
		t.Errorf("scope not written: %s", b)
	}
}

// legacyEvidence is Evidence as it was before PartnerList: old evidence
// hashes must verify the same.
type legacyEvidence struct {
	EventID        string     `json:"event_id,omitempty"`
	Event          string     `json:"event,omitempty"`
	FormID         string     `json:"form_id,omitempty"`
	ListID         string     `json:"list_id,omitempty"`
	Field          string     `json:"field,omitempty"`
	WordingVersion string     `json:"wording_version,omitempty"`
	WordingHash    string     `json:"wording_hash,omitempty"`
	PageURL        string     `json:"page_url,omitempty"`
	IP             string     `json:"ip,omitempty"`
	UserAgent      string     `json:"user_agent,omitempty"`
	Checkbox       string     `json:"checkbox,omitempty"`
	PreTicked      *bool      `json:"pre_ticked,omitempty"`
	Required       bool       `json:"required,omitempty"`
	OptInLevel     string     `json:"opt_in_level,omitempty"`
	ConfirmedAt    *time.Time `json:"confirmed_at,omitempty"`
}

func TestNewFieldsKeepOldHashes(t *testing.T) {
	s := ledgerSignal()
	e := s.Evidence
	old, _ := json.Marshal(legacyEvidence{e.EventID, e.Event, e.FormID, e.ListID, e.Field, e.WordingVersion, e.WordingHash,
		e.PageURL, e.IP, e.UserAgent, e.Checkbox, e.PreTicked, e.Required, e.OptInLevel, e.ConfirmedAt})
	if want := sha256.Sum256(old); !bytes.Equal(EvidenceHash(e), want[:]) {
		t.Error("evidence without a partner list hashes differently than before")
	}
	e.PartnerList = "partners-v7"
	if bytes.Equal(EvidenceHash(e), EvidenceHash(s.Evidence)) {
		t.Error("partner list not covered by the evidence hash")
	}
	// Scope is not part of the ledger record: a brand-scoped copy of an
	// all-brands withdrawal chains like any withdrawal.
	w := with(s, StatusWithdrawn)
	all := w
	all.Scope = ScopeAllBrands
	prev := bytes.Repeat([]byte{7}, 32)
	if !bytes.Equal(ChainHash(prev, NewLedgerRecord(1, 2, w, "applied")), ChainHash(prev, NewLedgerRecord(1, 2, all, "applied"))) {
		t.Error("scope changed the ledger hash")
	}
	if !bytes.Equal(FactKey(w), FactKey(all)) {
		t.Error("scope changed the fact key")
	}
}
