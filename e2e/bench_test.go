package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// BenchmarkEligibilityBatch10k measures POST /v1/eligibility for 10,000
// subjects (a third granted, a third withdrawn, a third unknown), end to
// end over HTTP: decode, normalize, load facts with a fixed number of
// queries, decide, encode.
func BenchmarkEligibilityBatch10k(b *testing.B) {
	e := start(b, envOptions{noWorker: true})
	// Seed 6,667 subjects with states directly (the ledger's chain is not
	// what is measured here).
	_, err := e.App.Store.DB.Exec(`
		INSERT INTO subjects (email, email_original, mailbox_key) SELECT 'bench' || g || '@example.com', 'bench' || g || '@example.com', 'bench' || g || '@example.com' FROM generate_series(1, 6667) g;
		INSERT INTO consent_events (subject_id, dedup_key, channel, brand, purpose, status, occurred_at, source, valid, outcome, evidence_hash, hash, quality)
			SELECT id, sha256(id::text::bytea), 'email', 'acme', 'marketing', CASE WHEN id % 2 = 0 THEN 'granted' ELSE 'withdrawn' END,
				now() - interval '1 day', 'bench', true, 'applied', sha256('e'), sha256(id::text::bytea), '[]'
			FROM subjects;
		INSERT INTO consent_states (subject_id, channel, brand, purpose, status, occurred_at, source, event_id)
			SELECT subject_id, channel, brand, purpose, status, occurred_at, source, id FROM consent_events;
		ANALYZE`)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench%d@example.com", i+1)
	}
	body, _ := json.Marshal(map[string]any{"channel": "email", "brand": "acme", "purpose": "marketing", "subjects": ids})
	h := http.Header{"Authorization": {"Bearer test-admin-token"}, "Content-Type": {"application/json"}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := e.do("POST", "/v1/eligibility", "", h, body)
		if r.Status != 200 {
			b.Fatalf("HTTP %d", r.Status)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/subject")
}
