package app

import (
	"context"
	"strings"
	"testing"

	"github.com/consentsync/consentsync/internal/testenv"
)

func TestPlainHTTPPublic(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url  string
		warn bool
	}{
		{"https://consent.example.com", false},
		{"http://consent.example.com", true},
		{"http://10.0.0.5:8080", true},
		{"http://127.0.0.1:8080", false},
		{"http://127.9.9.9", false},
		{"http://localhost:8080", false},
		{"http://LOCALHOST:8080", false},
		{"http://demo.localhost", false},
		{"http://[::1]:8080", false},
		{"http://[2001:db8::1]", true},
		{"http://localhost.example.com", true},
		{"", false},
		{"http://%zz", false},
	} {
		if got := plainHTTPPublic(c.url); got != c.warn {
			t.Errorf("plainHTTPPublic(%q) = %v, want %v", c.url, got, c.warn)
		}
	}
}

// A command that does not migrate, run against a database without
// consentsync's tables, says to migrate instead of failing on a missing
// relation later; a migrated database passes.
func TestPrepareSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	if err := prepareSchema(ctx, st, false); err != nil {
		t.Fatalf("migrated database: %v", err)
	}
	if _, err := st.DB.Exec(`DROP TABLE inbound_events CASCADE`); err != nil {
		t.Fatal(err)
	}
	if err := prepareSchema(ctx, st, false); err == nil || !strings.Contains(err.Error(), "consentsync migrate up") {
		t.Errorf("database without the tables: err = %v, want advice to migrate", err)
	}
}
