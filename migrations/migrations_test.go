package migrations_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	_ "github.com/lib/pq"

	"github.com/consentsync/consentsync/internal/testenv"
	"github.com/consentsync/consentsync/migrations"
)

// An interrupted CREATE INDEX CONCURRENTLY leaves an INVALID index behind
// and goose records nothing: the re-run of 00010 must replace it with a
// valid one (IF NOT EXISTS would keep the invalid one for ever). Also
// checks the migration's Down and Up round trip.
func TestOutboxIndexRebuiltAfterInterruptedBuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sql.Open("postgres", testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	valid := func() (bool, bool) {
		var ok bool
		err := db.QueryRow(`SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass('suppression_outbox_event')`).Scan(&ok)
		if errors.Is(err, sql.ErrNoRows) {
			return false, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return ok, true
	}
	if ok, exists := valid(); !ok || !exists {
		t.Fatalf("after Up: index valid %v, exists %v", ok, exists)
	}
	if err := migrations.Down(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, exists := valid(); exists {
		t.Fatal("Down left the index")
	}
	// What an interrupted build leaves (the test database's owner is a
	// superuser, so pg_index can be marked as Postgres marks it).
	if _, err := db.Exec(`CREATE INDEX suppression_outbox_event ON suppression_outbox (consent_event_id)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'suppression_outbox_event'::regclass`); err != nil {
		t.Fatal(err)
	}
	if ok, _ := valid(); ok {
		t.Fatal("could not make the index invalid")
	}
	if err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	if ok, exists := valid(); !ok || !exists {
		t.Errorf("after the re-run: index valid %v, exists %v", ok, exists)
	}
}
