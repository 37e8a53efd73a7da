package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestPrometheusEvaluatesDashboardAndRules runs a real Prometheus server
// (Debian's prometheus package, which make test installs for promtool) on
// the shipped deploy/prometheus/prometheus.yml — its target pointed at this
// consentsync's ops listener, scraped with the viewer token as the file's
// comment says — and checks what only a real server shows:
//   - the scrape succeeds (target up, the token accepted);
//   - every alert rule of alerts.yml evaluates without error;
//   - every dashboard query is valid PromQL on the live series (Grafana's
//     variables filled in as "All" would), and every panel has data once
//     a withdrawal went through;
//   - each template variable lists the live label values.
//
// TestDashboardAndAlertMetricsExported checks the names; this checks the
// queries.
func TestPrometheusEvaluatesDashboardAndRules(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("no prometheus binary (Debian package prometheus; make test installs it with promtool)")
	}
	e := start(t, envOptions{})
	prom := runPrometheus(t, bin, strings.TrimPrefix(e.OpsURL, "http://"))

	e.waitFor("Prometheus scraping consentsync", func() bool {
		var r struct {
			Data struct {
				ActiveTargets []struct {
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		return promGet(prom, "/api/v1/targets", nil, &r) == nil && len(r.Data.ActiveTargets) == 1 && r.Data.ActiveTargets[0].Health == "up"
	})

	e.withdrawByPostmark("prometheus-check@example.com")
	if r := e.do("POST", "/webhooks/postmark-acme", "token=wrong", nil, []byte(`{}`)); r.Status != 401 {
		t.Fatalf("bad token: HTTP %d", r.Status)
	}
	e.waitFor("suppressions sent", func() bool {
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE status = 'sent'`) >= 2
	})
	e.waitDrained()

	// Every rule of alerts.yml evaluated at least once after the work, and
	// none failed.
	want := len(alertExprs(t))
	since := time.Now()
	e.waitFor("every alert rule evaluated", func() bool {
		rules, err := promRules(prom)
		if err != nil || len(rules) != want {
			return false
		}
		for _, r := range rules {
			if r.LastEvaluation.Before(since) {
				return false
			}
		}
		return true
	})
	rules, err := promRules(prom)
	if err != nil || len(rules) != want {
		t.Fatalf("rules: %d of alerts.yml's %d loaded, %v", len(rules), want, err)
	}
	for _, r := range rules {
		if r.Health != "ok" || r.LastError != "" {
			t.Errorf("rule %s: health %q: %s", r.Name, r.Health, r.LastError)
		}
	}

	// Two more scrapes, so rates over the work have two samples.
	time.Sleep(2500 * time.Millisecond)
	grafana := strings.NewReplacer("$__rate_interval", "1m", "$destination", ".*", "$source", ".*")
	exprs := dashboardExprs(t)
	where := make([]string, 0, len(exprs))
	for w := range exprs {
		where = append(where, w)
	}
	sort.Strings(where)
	shown := map[string]bool{}
	for _, w := range where {
		expr := exprs[w]
		if v, ok := strings.CutPrefix(w, "variable "); ok {
			metric, label, ok := labelValues(expr)
			if !ok {
				t.Errorf("%s: %q is not label_values(metric, label)", w, expr)
				continue
			}
			var r struct {
				Status string   `json:"status"`
				Data   []string `json:"data"`
			}
			if err := promGet(prom, "/api/v1/label/"+label+"/values", url.Values{"match[]": {metric}}, &r); err != nil || r.Status != "success" || len(r.Data) == 0 {
				t.Errorf("variable %s: values %v, %v", v, r.Data, err)
			}
			continue
		}
		q := grafana.Replace(expr)
		if strings.Contains(q, "$") {
			t.Errorf("%s: a Grafana variable this test does not know in %q", w, expr)
			continue
		}
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := promGet(prom, "/api/v1/query", url.Values{"query": {q}}, &r); err != nil || r.Status != "success" {
			t.Errorf("%s: %q: %s %v", w, q, r.Error, err)
			continue
		}
		title := strings.TrimPrefix(w[:strings.LastIndex(w, " #")], "panel ")
		if len(r.Data.Result) > 0 {
			shown[title] = true
		}
	}
	// Every panel has a series to draw (0 counts: the metrics are created
	// at zero), so none shows Grafana's "No data" beside a working
	// pipeline.
	for _, w := range where {
		if title, ok := strings.CutPrefix(w, "panel "); ok && !shown[title[:strings.LastIndex(title, " #")]] {
			t.Errorf("panel %q shows no data after a withdrawal went through", title)
		}
	}
}

// labelValues splits Grafana's label_values(metric, label).
func labelValues(q string) (metric, label string, ok bool) {
	inner, ok := strings.CutPrefix(strings.TrimSpace(q), "label_values(")
	if !ok || !strings.HasSuffix(inner, ")") {
		return "", "", false
	}
	metric, label, ok = strings.Cut(strings.TrimSuffix(inner, ")"), ",")
	return strings.TrimSpace(metric), strings.TrimSpace(label), ok
}

type promRule struct {
	Name           string    `json:"name"`
	Health         string    `json:"health"`
	LastError      string    `json:"lastError"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

func promRules(base string) ([]promRule, error) {
	var r struct {
		Data struct {
			Groups []struct {
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := promGet(base, "/api/v1/rules", nil, &r); err != nil {
		return nil, err
	}
	var out []promRule
	for _, g := range r.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

// promGet GETs a Prometheus HTTP API path and decodes its JSON answer
// (also an error answer's: status "error" with its message).
func promGet(base, path string, q url.Values, into any) error {
	u := base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(into)
}

// runPrometheus starts bin on deploy/prometheus/prometheus.yml with its
// target replaced by target (host:port), the viewer token as the scrape's
// credentials file, alerts.yml from the repository, and 1 s scrape and
// evaluation intervals; it returns the server's base URL.
func runPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Global        map[string]any   `yaml:"global"`
		RuleFiles     []string         `yaml:"rule_files"`
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.ScrapeConfigs) != 1 || len(cfg.RuleFiles) != 1 || filepath.Base(cfg.RuleFiles[0]) != "alerts.yml" {
		t.Fatalf("prometheus.yml: %d scrape configs, rule files %v: not the layout this test knows", len(cfg.ScrapeConfigs), cfg.RuleFiles)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "viewer-token")
	if err := os.WriteFile(tokenFile, []byte(viewerToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Abs("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Global["scrape_interval"], cfg.Global["evaluation_interval"] = "1s", "1s"
	cfg.RuleFiles = []string{rules}
	sc := cfg.ScrapeConfigs[0]
	sc["static_configs"] = []map[string]any{{"targets": []string{target}}}
	sc["authorization"] = map[string]any{"credentials_file": tokenFile}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, out, 0o600); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus logs:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited: %v", err)
		default:
		}
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30 s on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
