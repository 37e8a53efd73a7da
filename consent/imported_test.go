package consent

import (
	"strings"
	"testing"
	"time"
)

// TestImportedGrantAnswer: a grant a backfill imported without a tick or a
// confirmation is assessed express unknown (ReasonImported); eligibility
// allows it (strict_quality off) saying its quality is unknown, and
// refuses it under strict_quality, still saying so. A live provider
// subscription is not marked, and an imported tick is not either.
func TestImportedGrantAnswer(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	at := now.Add(-24 * time.Hour)
	k := Key{Channel: ChannelEmail, Brand: "acme", Purpose: PurposeMarketing}
	grant := func(ev Evidence) Facts {
		sig := Signal{Subject: Subject{Email: "a@example.com"}, Channel: ChannelEmail, Brand: "acme", Purpose: PurposeMarketing,
			Status: StatusGranted, OccurredAt: at, Source: "crm-export", Evidence: ev}
		return Facts{Known: true, Email: "a@example.com", States: map[Key]StateFact{k: {Status: StatusGranted, OccurredAt: at, Quality: Assess(sig, QualityContext{})}}}
	}
	imported := Evidence{Imported: "imported from crm-export at 2026-06-01T00:00:00Z", WordingVersion: "v1"}
	a := Decide(grant(imported), k, Policy{}, now)
	if !a.Allowed || a.Quality != Unknown || !strings.Contains(a.Detail, "express: "+ReasonImported) {
		t.Errorf("imported grant: %+v", a)
	}
	a = Decide(grant(imported), k, Policy{StrictQuality: true}, now)
	if a.Allowed || a.Reason != ReasonInvalidOptIn || a.Quality != Unknown {
		t.Errorf("imported grant, strict: %+v", a)
	}
	for name, ev := range map[string]Evidence{
		"live subscription": {Event: "subscribe", WordingVersion: "v1"},
		"imported tick":     {Imported: imported.Imported, Checkbox: "on", WordingVersion: "v1"},
	} {
		if a := Decide(grant(ev), k, Policy{}, now); !a.Allowed || a.Quality != "" {
			t.Errorf("%s: %+v", name, a)
		}
	}
}
