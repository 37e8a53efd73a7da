//go:build chaos

package chaos

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/consentsync/consentsync/internal/fakeprovider"
	"github.com/consentsync/consentsync/internal/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// env is one fault test's world: the cluster, the two fake providers and
// the counting fronts consentsync calls them through.
type env struct {
	t            *testing.T
	c            *harness.Cluster
	sg, mc       *fakeprovider.Provider
	sgTap, mcTap *harness.Tap
	// logs are the destinations' receive logs, by destination name.
	logs map[string]harness.ReceiveLog
}

// newEnv starts the fakes, then the cluster configured with cfg (its
// destination URLs filled in) and Redis options ro. It starts no
// consentsync process.
func newEnv(t *testing.T, cfg harness.Config, ro harness.RedisOptions) *env {
	t.Helper()
	sg := fakeprovider.NewSendGrid(harness.SendGridKey)
	t.Cleanup(sg.Close)
	mc := fakeprovider.NewMailchimp(harness.MailchimpKey, harness.MailchimpList)
	t.Cleanup(mc.Close)
	e := &env{t: t, sg: sg, mc: mc, sgTap: harness.NewTap(t, sg.Handler()), mcTap: harness.NewTap(t, mc.Handler())}
	cfg.SendGridURL, cfg.MailchimpURL = e.sgTap.URL, e.mcTap.URL
	e.c = harness.NewCluster(t, harness.Options{Config: cfg, Redis: ro})
	e.logs = map[string]harness.ReceiveLog{harness.SendGridDest: sg, harness.MailchimpDest: mc}
	return e
}

// waitDone waits up to timeout for every accepted request of records to be
// processed and every withdrawal delivered; it fails the test with what
// was left (what explains a failure) otherwise.
func (e *env) waitDone(what string, records []harness.Record, timeout time.Duration) time.Duration {
	e.t.Helper()
	took, err := harness.WaitDone(context.Background(), e.c.DB(), records, e.logs, timeout)
	if err != nil {
		e.t.Fatalf("%s: acknowledged work not done: %v", what, err)
	}
	e.t.Logf("%s: all acknowledged work done in %s", what, took.Round(time.Millisecond))
	return took
}

// audit runs the end-of-test audit over records.
func (e *env) audit(records []harness.Record, outages ...harness.Window) harness.Report {
	e.t.Helper()
	a := &harness.Audit{DB: e.c.DB(), Records: records, Destinations: e.logs, Outages: outages}
	return a.Run(e.t)
}

// processedBetween counts inbound rows processed in [from, to).
func (e *env) processedBetween(from, to time.Time) int {
	e.t.Helper()
	var n int
	if err := e.c.DB().QueryRow(`SELECT count(*) FROM inbound_events WHERE processed_at >= $1 AND processed_at < $2`, from, to).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}
