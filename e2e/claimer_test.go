package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/internal/fixtures"
)

// A stored webhook whose task Redis lost is reconciled by the worker's
// claimer within a second or so, without waiting for the sweeper
// (sweep_after is an hour here).
func TestClaimerTakesRowsWithoutTask(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{noWorker: true, mutate: func(c *config.Config) {
		c.Worker.SweepAfter = time.Hour
		c.Worker.SweepEvery = time.Hour
	}})
	fx, err := fixtures.Get("form-signup")
	if err != nil {
		t.Fatal(err)
	}
	if r := e.postFixture(fx); r.Status != 202 {
		t.Fatalf("post: %d %s", r.Status, r.Body)
	}
	if err := e.App.Redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	e.StartWorker()
	e.waitFor("the row to be processed by the claimer", func() bool {
		return e.count(`SELECT count(*) FROM inbound_events WHERE status = 'processed'`) == 1
	})
}
