package e2e

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"github.com/consentsync/consentsync/internal/sandbox"
	"github.com/consentsync/consentsync/jobs"
	"github.com/consentsync/consentsync/service"
	"github.com/consentsync/consentsync/store"
)

// promName finds the metric names of consentsync and asynq in a PromQL
// expression, with the label matchers that follow them (group 2, without
// braces). Functions, keywords and label names carry no such prefix.
var promName = regexp.MustCompile(`\b((?:consentsync|asynq)_[a-zA-Z0-9_]+)\b(?:\{([^}]*)\})?`)

// matcherLabel is a label name in a selector's matchers.
var matcherLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)

// dashboardExprs returns every PromQL query of the Grafana dashboard
// (panel targets and template variable queries), by where it is.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/grafana/consentsync.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			GridPos struct {
				H, W, X, Y int
			} `json:"gridPos"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr       string `json:"expr"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	out := map[string]string{}
	ids := map[int]bool{}
	// Grafana lays panels on a 24-column grid: each inside it, none
	// overlapping another, ids unique, every query on the datasource
	// variable.
	type cell struct{ x, y int }
	taken := map[cell]string{}
	if d.UID == "" {
		t.Error("dashboard: no uid (provisioning and links need one)")
	}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("dashboard: panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("dashboard: panel %q outside the grid: %+v", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Fatalf("dashboard: panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("dashboard: panel %q: datasource %q, %d queries", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for i, tg := range p.Targets {
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("dashboard: panel %q query %d not on the datasource variable", p.Title, i)
			}
			out["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	hasDatasourceVar := false
	for _, v := range d.Templating.List {
		switch q := v.Query.(type) {
		case map[string]any:
			s, _ := q["query"].(string)
			out["variable "+v.Name] = s
		case string:
			if v.Type == "query" {
				out["variable "+v.Name] = q
			}
		}
		hasDatasourceVar = hasDatasourceVar || (v.Type == "datasource" && v.Name == "datasource")
	}
	if !hasDatasourceVar {
		t.Error("dashboard: no datasource template variable")
	}
	return out
}

// alertExprs returns every rule expression of the Prometheus rules file, by
// alert name.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert+r.Record] = r.Expr
		}
	}
	return out
}

// chartMetrics returns the metric the Helm chart's work autoscaler follows,
// with a selector per queue (deploy/helm/consentsync/values.yaml).
func chartMetrics(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/helm/consentsync/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Autoscaling struct {
			Work struct {
				MetricName string   `yaml:"metricName"`
				Queues     []string `yaml:"queues"`
			} `yaml:"work"`
		} `yaml:"autoscaling"`
	}
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	out := map[string]string{}
	for _, q := range v.Autoscaling.Work.Queues {
		out["helm work autoscaler "+q] = v.Autoscaling.Work.MetricName + `{queue="` + q + `"}`
	}
	if len(out) == 0 {
		t.Error("values.yaml: the work autoscaler names no queue")
	}
	return out
}

// TestDashboardAndAlertMetricsExported: every metric the Grafana dashboard
// and the alert rules query (and the Helm chart's autoscaler follows), and
// every label they select on, is exported
// by a running consentsync (receiver and worker, after one withdrawal went
// through to every destination) — so a renamed metric or label breaks this
// test, not a dashboard in production. Also: the series carry no address,
// and the new histograms observed real work.
func TestDashboardAndAlertMetricsExported(t *testing.T) {
	t.Parallel()
	exprs := dashboardExprs(t)
	nDash := len(exprs)
	for k, v := range alertExprs(t) {
		exprs[k] = v
	}
	if nDash < 20 || len(exprs)-nDash < 10 {
		t.Fatalf("parsed %d dashboard and %d alert queries: the files were not read as expected", nDash, len(exprs)-nDash)
	}
	for k, v := range chartMetrics(t) {
		exprs[k] = v
	}

	e := start(t, envOptions{})
	e.withdrawByPostmark("metrics-check@example.com")
	e.waitFor("suppressions sent", func() bool {
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE status = 'sent'`) >= 2
	})
	if r := e.do("POST", "/webhooks/postmark-acme", "token=wrong", nil, []byte(`{}`)); r.Status != 401 {
		t.Fatalf("bad token: HTTP %d", r.Status)
	}
	e.waitDrained()

	fams, err := e.App.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "@") {
					t.Errorf("%s carries an address in label %s", f.GetName(), l.GetName())
				}
			}
		}
	}
	// family returns the exported family a queried name belongs to
	// (histograms are queried by their _bucket, _sum and _count series).
	family := func(name string) *dto.MetricFamily {
		if f, ok := byName[name]; ok {
			return f
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := byName[strings.TrimSuffix(name, suf)]; ok && strings.HasSuffix(name, suf) && f.GetType() == dto.MetricType_HISTOGRAM {
				return f
			}
		}
		return nil
	}
	labelsOf := func(f *dto.MetricFamily) map[string]bool {
		out := map[string]bool{"__name__": true}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				out[l.GetName()] = true
			}
		}
		if f.GetType() == dto.MetricType_HISTOGRAM {
			out["le"] = true
		}
		return out
	}
	checked := map[string]bool{}
	where := make([]string, 0, len(exprs))
	for w := range exprs {
		where = append(where, w)
	}
	sort.Strings(where)
	for _, w := range where {
		found := promName.FindAllStringSubmatch(exprs[w], -1)
		if len(found) == 0 {
			t.Errorf("%s: no consentsync or asynq metric in %q", w, exprs[w])
		}
		for _, m := range found {
			f := family(m[1])
			if f == nil {
				t.Errorf("%s: %s is not exported", w, m[1])
				continue
			}
			checked[m[1]] = true
			have := labelsOf(f)
			for _, l := range matcherLabel.FindAllStringSubmatch(m[2], -1) {
				if !have[l[1]] {
					t.Errorf("%s: %s has no label %q", w, m[1], l[1])
				}
			}
		}
	}
	// The dashboard and rules cover each stage named in the README.
	for _, want := range []string{"consentsync_webhooks_received_total", "consentsync_webhook_ack_seconds_bucket", "consentsync_signals_total", "consentsync_signal_statuses_total",
		"consentsync_outbox_oldest_pending_seconds", "consentsync_suppressions_pushed_total", "consentsync_push_duration_seconds_bucket",
		"consentsync_ratelimit_wait_seconds_bucket", "consentsync_destination_circuit_state", "consentsync_sweeper_requeued_total",
		"consentsync_withdrawal_honoured_seconds_bucket", "consentsync_withdrawal_oldest_unhonoured_seconds", "consentsync_outbox_failed",
		"consentsync_inbox_failed", "asynq_tasks_enqueued_total"} {
		if !checked[want] {
			t.Errorf("neither the dashboard nor the rules query %s", want)
		}
	}

	// The new series observed the work just done, not only zeros.
	count := func(name string, labels map[string]string) float64 {
		var n float64
		f := byName[name]
		if f == nil {
			return -1
		}
	next:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
					continue next
				}
			}
			switch {
			case m.GetHistogram() != nil:
				n += float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				n += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				n += m.GetGauge().GetValue()
			}
		}
		return n
	}
	if n := count("consentsync_webhook_ack_seconds", map[string]string{"source": "postmark-acme"}); n != 2 {
		t.Errorf("ack latency observed %v postmark-acme requests, want 2", n)
	}
	if n := count("consentsync_webhooks_received_total", map[string]string{"source": "postmark-acme", "outcome": "unauthorized"}); n != 1 {
		t.Errorf("unauthorized postmark-acme requests = %v, want 1", n)
	}
	if n := count("consentsync_ratelimit_wait_seconds", map[string]string{"destination": "sendgrid-acme"}); n < 1 {
		t.Errorf("sendgrid-acme (rate-limited by default) observed %v rate-limit waits, want ≥ 1", n)
	}
	if n := count("consentsync_destination_circuit_state", map[string]string{"destination": "sendgrid-acme"}); n != 0 {
		t.Errorf("sendgrid-acme circuit state = %v after a success, want 0 (closed)", n)
	}
	if n := count("consentsync_signal_statuses_total", map[string]string{"source": "postmark-acme", "status": "withdrawn"}); n != 1 {
		t.Errorf("withdrawn signals from postmark-acme = %v, want 1", n)
	}
	if n := count("consentsync_signal_statuses_total", map[string]string{"status": "granted"}); n != 0 {
		t.Errorf("granted signals = %v, want 0", n)
	}
	if n := count("consentsync_suppressions_pushed_total", map[string]string{"outcome": "sent"}); n < 2 {
		t.Errorf("sent suppressions counted = %v, want ≥ 2", n)
	}
}

// TestSweeperCountsOnlyWhatItEnqueued: a stored webhook no task holds is
// re-enqueued and counted once; a second sweep finds its task live and
// counts nothing.
func TestSweeperCountsOnlyWhatItEnqueued(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{noWorker: true, mutate: func(c *configT) { c.Worker.SweepAfter = time.Millisecond }})
	e.withdrawByPostmark("sweep-count@example.com")
	// The receiver enqueued its task: delete it, as if Redis had lost it.
	if _, err := e.App.Inspector.DeleteAllPendingTasks(jobs.QueueInbound); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	requeued := func() float64 {
		return testutil.ToFloat64(e.App.Metrics.Sweeps.WithLabelValues("inbound"))
	}
	for i, want := range []struct{ inbound, total float64 }{{1, 1}, {0, 1}} {
		in, _, err := e.App.Worker.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if float64(in) != want.inbound || requeued() != want.total {
			t.Fatalf("sweep %d: re-enqueued %d, counter %v; want %v, %v", i+1, in, requeued(), want.inbound, want.total)
		}
	}
}

// TestDeadLettersOperatorLoop: a stored webhook that can never be parsed
// is given up on (failed, its task archived by asynq with its error) and a
// suppression the destination refuses is failed; both show in the service's
// dead letters, the metrics and the alerts' series; once fixed, replay and
// repush take them by id and the dead letters are empty.
func TestDeadLettersOperatorLoop(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{})
	ctx := context.Background()
	e.Sandbox.Script(sandbox.SendGrid, sandbox.BadRequest())
	e.withdrawByPostmark("loop@example.com")
	bad, _, err := e.App.Store.InsertInbound(ctx, store.Inbound{Source: "postmark-acme", Kind: "postmark", DedupKey: "garbage",
		Method: "POST", Path: "/webhooks/postmark-acme", Headers: []byte(`{"Content-Type":["application/json"]}`), Body: []byte(`{"RecordType":`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.App.Enqueuer.Inbound(ctx, bad); err != nil {
		t.Fatal(err)
	}
	e.waitFor("dead letters", func() bool {
		return e.count(`SELECT count(*) FROM inbound_events WHERE status = 'failed'`) == 1 &&
			e.count(`SELECT count(*) FROM suppression_outbox WHERE destination = 'sendgrid-acme' AND status = 'failed'`) == 1
	})
	// The row's own task archives itself when it is the one that gave up;
	// when a batch of another task (or the claimer) took the row, its own
	// task finds it done and ends: no archived task. Wait for that task.
	e.waitFor("inbound task settled", func() bool {
		info, err := e.App.Inspector.GetTaskInfo(jobs.QueueInbound, jobs.InboundTaskID(bad))
		return err != nil || info.State == asynq.TaskStateArchived || info.State == asynq.TaskStateCompleted
	})
	d, err := e.App.Service.DeadLetters(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d.WebhooksTotal != 1 || d.Webhooks[0].ID != bad || !strings.Contains(d.Webhooks[0].Reason, "parse") {
		t.Errorf("failed webhooks = %+v", d.Webhooks)
	}
	archived := d.TasksTotal
	t.Logf("archived inbound tasks: %d", archived)
	if archived > 1 || archived == 1 && (d.Tasks[0].InboundID != bad || !strings.Contains(d.Tasks[0].Reason, "parse") || d.Tasks[0].Age < 0) {
		t.Errorf("archived tasks = %+v; want at most inbound %d with its error and age", d.Tasks, bad)
	}
	if d.SuppressionsTotal != 1 || d.Suppressions[0].Address != "l***@e***.com" || d.Suppressions[0].Destination != "sendgrid-acme" {
		t.Errorf("failed suppressions = %+v", d.Suppressions)
	}
	fams, err := e.App.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gauge := func(name string, labels ...string) float64 {
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				ok := true
				for i := 0; i+1 < len(labels); i += 2 {
					ok = ok && slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == labels[i] && l.GetValue() == labels[i+1] })
				}
				if ok {
					return m.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
	if g := gauge("consentsync_inbox_failed"); g != 1 {
		t.Errorf("consentsync_inbox_failed = %v, want 1", g)
	}
	if g := gauge("consentsync_outbox_failed", "destination", "sendgrid-acme"); g != 1 {
		t.Errorf("consentsync_outbox_failed{sendgrid-acme} = %v, want 1", g)
	}
	if g := gauge("asynq_tasks_enqueued_total", "queue", jobs.QueueInbound, "state", "archived"); g != float64(archived) {
		t.Errorf("archived inbound tasks = %v, want %d", g, archived)
	}

	// Fixed: the body is readable now, and SendGrid accepts.
	if _, err := e.App.Store.DB.Exec(`UPDATE inbound_events SET body = $2 WHERE id = $1`, bad,
		[]byte(`{"RecordType":"SubscriptionChange","MessageStream":"broadcast","ChangedAt":"2025-11-20T10:41:00Z","Recipient":"loop2@example.com","SuppressSending":true,"SuppressionReason":"ManualSuppression"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.App.Service.Replay(ctx, service.ReplayRequest{IDs: []int64{bad}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.App.Service.Repush(ctx, "", []int64{d.Suppressions[0].ID}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("dead letters taken", func() bool {
		d, err := e.App.Service.DeadLetters(ctx, 10)
		return err == nil && d.WebhooksTotal+d.SuppressionsTotal+d.TasksTotal == 0 &&
			e.count(`SELECT count(*) FROM suppression_outbox WHERE status = 'sent' AND email IN ('loop@example.com', 'loop2@example.com')`) == 4
	})
}

// TestCircuitStateGauge: consentsync_destination_circuit_state and
// consentsync_destination_failed_calls follow destination_status, the
// schedule every worker shares: 0 closed, 1 retrying below
// worker.circuit_failures failed calls in a row, 2 open from there.
func TestCircuitStateGauge(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{noWorker: true})
	threshold := e.App.Config.Worker.CircuitFailures
	if _, err := e.App.Store.DB.Exec(`INSERT INTO destination_status (destination, failures, hold_until) VALUES
		('sendgrid-acme', 1, now() + interval '1 minute'), ('mailchimp-acme', $1, now() + interval '1 minute')`, threshold); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]float64{"sendgrid-acme": {1, 1}, "mailchimp-acme": {2, float64(threshold)}}
	fams, err := e.App.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]float64{}
	for _, f := range fams {
		i := slices.Index([]string{"consentsync_destination_circuit_state", "consentsync_destination_failed_calls"}, f.GetName())
		if i < 0 {
			continue
		}
		for _, m := range f.GetMetric() {
			d := m.GetLabel()[0].GetValue()
			v := got[d]
			v[i] = m.GetGauge().GetValue()
			got[d] = v
		}
	}
	for d, w := range want {
		if got[d] != w {
			t.Errorf("%s: circuit state, failed calls = %v, want %v", d, got[d], w)
		}
	}
	for d, v := range got {
		if _, failing := want[d]; !failing && v != [2]float64{0, 0} {
			t.Errorf("%s: %v, want closed with no failed call", d, v)
		}
	}
	if len(got) < 2 {
		t.Errorf("gauges for %d destinations, want every configured one", len(got))
	}
}

// TestSweeperRecoversArchivedInbound: an inbound task asynq archived while
// its webhook was still received (its last retry failed on Postgres
// before the batch started, the worker was killed on its last try, an
// operator archived it) holds the task id: the sweeper must replace it,
// not take it for live, or the acknowledged webhook waits forever.
func TestSweeperRecoversArchivedInbound(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{noWorker: true, mutate: func(c *configT) { c.Worker.SweepAfter = time.Millisecond }})
	e.withdrawByPostmark("sweep-archived@example.com")
	if n, err := e.App.Inspector.ArchiveAllPendingTasks(jobs.QueueInbound); err != nil || n != 1 {
		t.Fatalf("archived %d tasks, %v; want 1", n, err)
	}
	time.Sleep(5 * time.Millisecond)
	in, _, err := e.App.Worker.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in != 1 {
		t.Errorf("sweep re-enqueued %d webhooks; want 1 (the received row's task was archived)", in)
	}
	var id int64
	if err := e.App.Store.DB.Get(&id, `SELECT id FROM inbound_events WHERE status = 'received'`); err != nil {
		t.Fatal(err)
	}
	info, err := e.App.Inspector.GetTaskInfo(jobs.QueueInbound, jobs.InboundTaskID(id))
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("task of received webhook %d after the sweep: %+v, %v; want pending", id, info, err)
	}
	if n, err := e.App.Inspector.ListArchivedTasks(jobs.QueueInbound); err != nil || len(n) != 0 {
		t.Errorf("archived tasks left: %d, %v; want none (the replaced one is gone from the archive)", len(n), err)
	}
}
