// Package helm_test checks what the Helm chart deploy/helm/consentsync
// renders: helm template's manifests, decoded, against what consentsync
// needs (commands, probes, secrets, the migration hook, the configuration
// consentsync's own parser accepts). scripts/helm.sh (make test) builds
// the pinned helm first; HELM names another binary.
package helm_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/consentsync/consentsync/config"
)

// helmVersion is scripts/helm.sh's HELM_VERSION.
const helmVersion = "v3.21.4"

func helmBin(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	dir := os.Getenv("HELM_CACHE")
	if dir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			t.Skipf("no cache dir for helm: %v", err)
		}
		dir = filepath.Join(c, "consentsync", "tools", "helm-"+helmVersion)
	}
	h := filepath.Join(dir, "helm")
	if _, err := os.Stat(h); err != nil {
		t.Skipf("helm %s not built at %s: run scripts/helm.sh (make test does) or set HELM", helmVersion, h)
	}
	return h
}

// render runs helm template with the values files and --set pairs
// ("--set-file" pairs when prefixed with "file:") and decodes every
// manifest.
func render(t *testing.T, valueFiles []string, set ...string) ([]map[string]any, error) {
	t.Helper()
	args := []string{"template", "t", "consentsync"}
	for _, f := range valueFiles {
		args = append(args, "-f", f)
	}
	for _, s := range set {
		if f, ok := strings.CutPrefix(s, "file:"); ok {
			args = append(args, "--set-file", f)
		} else {
			args = append(args, "--set", s)
		}
	}
	cmd := exec.Command(helmBin(t), args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, errors.New(stderr.String())
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(&out)
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template output: %v", err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs, nil
}

// get walks m along path (map keys, or list indexes as ints).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string { s, _ := get(v, path...).(string); return s }

func byKind(docs []map[string]any) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for _, d := range docs {
		out[str(d, "kind")] = append(out[str(d, "kind")], d)
	}
	return out
}

func named(docs []map[string]any, name string) map[string]any {
	for _, d := range docs {
		if str(d, "metadata", "name") == name {
			return d
		}
	}
	return nil
}

// envOf returns a container's env entries by name.
func envOf(c any) map[string]any {
	out := map[string]any{}
	l, _ := get(c, "env").([]any)
	for _, e := range l {
		out[str(e, "name")] = e
	}
	return out
}

func TestChartEveryOptionOn(t *testing.T) {
	docs, err := render(t, []string{"consentsync/ci/all-on-values.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	k := byKind(docs)
	for kind, n := range map[string]int{"Deployment": 2, "Service": 2, "ConfigMap": 1, "Job": 1, "ServiceMonitor": 1, "HorizontalPodAutoscaler": 2, "ServiceAccount": 1} {
		if len(k[kind]) != n {
			t.Errorf("%d %s, want %d", len(k[kind]), kind, n)
		}
	}
	for _, comp := range []string{"serve", "work"} {
		d := named(k["Deployment"], "t-consentsync-"+comp)
		if d == nil {
			t.Fatalf("no %s deployment", comp)
		}
		if get(d, "spec", "replicas") != nil {
			t.Errorf("%s: replicas set although its HPA scales it", comp)
		}
		c := get(d, "spec", "template", "spec", "containers", 0)
		if args, _ := get(c, "args").([]any); len(args) != 2 || args[0] != comp || args[1] != "-migrate=false" {
			t.Errorf("%s: args %v, want [%s -migrate=false] (the hook Job migrates)", comp, args, comp)
		}
		if str(c, "image") != "registry.example.com/consentsync:1.2.3" {
			t.Errorf("%s: image %q", comp, str(c, "image"))
		}
		for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
			if str(c, probe, "httpGet", "path") != path || str(c, probe, "httpGet", "port") != "ops" {
				t.Errorf("%s: %s = %v, want %s on the ops port", comp, probe, get(c, probe), path)
			}
		}
		env := envOf(c)
		for name, ref := range map[string][2]string{"DATABASE_URL": {"cs-db", "url"}, "REDIS_URL": {"cs-redis", "url"},
			"CONSENTSYNC_ADMIN_TOKEN": {"cs-tokens", "admin"}, "CONSENTSYNC_VIEWER_TOKEN": {"cs-tokens", "viewer"}} {
			e := env[name]
			if str(e, "valueFrom", "secretKeyRef", "name") != ref[0] || str(e, "valueFrom", "secretKeyRef", "key") != ref[1] || get(e, "value") != nil {
				t.Errorf("%s: %s = %v, want from Secret %s key %s", comp, name, e, ref[0], ref[1])
			}
		}
		if str(env["OPS_ADDR"], "value") != "0.0.0.0:9090" || str(env["CONSENTSYNC_CONFIG"], "value") != "/etc/consentsync/consentsync.yaml" || str(env["LOG_LEVEL"], "value") != "debug" {
			t.Errorf("%s: env %v", comp, env)
		}
		if str(c, "envFrom", 0, "secretRef", "name") != "cs-providers" {
			t.Errorf("%s: envFrom %v, want the providers Secret", comp, get(c, "envFrom"))
		}
		if comp == "serve" && (str(env["HTTP_ADDR"], "value") != ":8080" || str(c, "ports", 0, "name") != "http") {
			t.Errorf("serve: HTTP_ADDR %v, ports %v", env["HTTP_ADDR"], get(c, "ports"))
		}
		if get(c, "securityContext", "readOnlyRootFilesystem") != true || get(d, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
			t.Errorf("%s: not locked down: %v", comp, get(c, "securityContext"))
		}
		if str(d, "spec", "template", "metadata", "annotations", "checksum/config") == "" {
			t.Errorf("%s: no config checksum: pods would not roll on a config change", comp)
		}
	}

	job := k["Job"][0]
	hooks := strings.Split(str(job, "metadata", "annotations", "helm.sh/hook"), ",")
	if !slices.Contains(hooks, "pre-install") || !slices.Contains(hooks, "pre-upgrade") {
		t.Errorf("migration job hooks = %v", hooks)
	}
	jc := get(job, "spec", "template", "spec", "containers", 0)
	if args, _ := get(jc, "args").([]any); len(args) != 2 || args[0] != "migrate" || args[1] != "up" {
		t.Errorf("migration job args = %v", args)
	}
	if env := envOf(jc); str(env["DATABASE_URL"], "valueFrom", "secretKeyRef", "name") != "cs-db" || len(env) != 1 {
		t.Errorf("migration job env = %v, want DATABASE_URL alone", env)
	}

	// The rendered configuration is one consentsync itself accepts (every
	// ${VAR} set, as the providers Secret would).
	raw := str(k["ConfigMap"][0], "data", "consentsync.yaml")
	cfg, err := config.Parse([]byte(raw), func(string) (string, bool) { return "set-by-secret", true })
	if err != nil {
		t.Fatalf("rendered configuration refused: %v", err)
	}
	if len(cfg.Sources) == 0 || len(cfg.Destinations) == 0 {
		t.Errorf("rendered configuration lost its sources or destinations: %d, %d", len(cfg.Sources), len(cfg.Destinations))
	}

	// The ServiceMonitor selects the ops Service, which selects serve and
	// work pods (not the migration Job's).
	sm := k["ServiceMonitor"][0]
	ops := named(k["Service"], "t-consentsync-ops")
	for key, v := range get(sm, "spec", "selector", "matchLabels").(map[string]any) {
		if get(ops, "metadata", "labels", key) != v {
			t.Errorf("ServiceMonitor selects %s=%v; the ops Service has %v", key, v, get(ops, "metadata", "labels", key))
		}
	}
	for key, v := range get(ops, "spec", "selector").(map[string]any) {
		for _, comp := range []string{"serve", "work"} {
			if get(named(k["Deployment"], "t-consentsync-"+comp), "spec", "template", "metadata", "labels", key) != v {
				t.Errorf("ops Service selects %s=%v; %s pods lack it", key, v, comp)
			}
		}
		if get(job, "spec", "template", "metadata", "labels", key) != v {
			continue
		}
		if key == "consentsync.io/ops" {
			t.Error("ops Service selects the migration Job's pod")
		}
	}
	if str(sm, "spec", "endpoints", 0, "port") != "ops" || str(sm, "spec", "endpoints", 0, "path") != "/metrics" ||
		str(sm, "spec", "endpoints", 0, "authorization", "credentials", "name") != "cs-tokens" {
		t.Errorf("ServiceMonitor endpoint = %v", get(sm, "spec", "endpoints", 0))
	}

	hpa := named(k["HorizontalPodAutoscaler"], "t-consentsync-work")
	var queues []string
	ms, _ := get(hpa, "spec", "metrics").([]any)
	for _, m := range ms {
		if str(m, "type") != "External" || str(m, "external", "metric", "name") != "asynq_queue_latency_seconds" || str(m, "external", "target", "type") != "Value" {
			t.Errorf("work HPA metric = %v", m)
		}
		queues = append(queues, str(m, "external", "metric", "selector", "matchLabels", "queue"))
	}
	if !slices.Equal(queues, []string{"inbound", "suppression"}) || str(hpa, "spec", "scaleTargetRef", "name") != "t-consentsync-work" {
		t.Errorf("work HPA: queues %v, target %v", queues, get(hpa, "spec", "scaleTargetRef"))
	}
}

func TestChartDefaultsAndRefusals(t *testing.T) {
	docs, err := render(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := byKind(docs)
	if len(k["ServiceMonitor"])+len(k["HorizontalPodAutoscaler"]) != 0 || len(k["Job"]) != 1 {
		t.Errorf("defaults: %d ServiceMonitor, %d HPA, %d Job; want 0, 0, 1", len(k["ServiceMonitor"]), len(k["HorizontalPodAutoscaler"]), len(k["Job"]))
	}
	c := get(named(k["Deployment"], "t-consentsync-work"), "spec", "template", "spec", "containers", 0)
	if _, ok := envOf(c)["CONSENTSYNC_VIEWER_TOKEN"]; ok {
		t.Error("viewer token read from a Secret no value names")
	}
	env := envOf(c)
	if get(env["CONSENTSYNC_ADMIN_TOKEN"], "valueFrom", "secretKeyRef", "optional") != true || get(env["DATABASE_URL"], "valueFrom", "secretKeyRef", "optional") != nil {
		t.Errorf("the admin token must be optional, DATABASE_URL not: %v, %v", env["CONSENTSYNC_ADMIN_TOKEN"], env["DATABASE_URL"])
	}
	if raw := str(k["ConfigMap"][0], "data", "consentsync.yaml"); true {
		if _, err := config.Parse([]byte(raw), func(string) (string, bool) { return "", false }); err != nil {
			t.Errorf("default (empty) configuration refused: %v", err)
		}
	}

	// The configuration given as a file's text (--set-file) is mounted as
	// that text.
	docs, err = render(t, nil, "file:config=../../consentsync.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw := str(byKind(docs)["ConfigMap"][0], "data", "consentsync.yaml")
	want, _ := os.ReadFile("../../consentsync.example.yaml")
	if strings.TrimSpace(raw) != strings.TrimSpace(string(want)) {
		t.Errorf("--set-file config: mounted text differs from the file")
	}
	if cfg, err := config.Parse([]byte(raw), func(string) (string, bool) { return "x", true }); err != nil || len(cfg.Sources) == 0 {
		t.Errorf("--set-file config refused: %v", err)
	}

	// Without the hook Job, each process migrates at start.
	docs, err = render(t, nil, "migrations.job=false")
	if err != nil {
		t.Fatal(err)
	}
	k = byKind(docs)
	if len(k["Job"]) != 0 {
		t.Error("migrations.job=false still renders the Job")
	}
	for _, d := range k["Deployment"] {
		if args, _ := get(d, "spec", "template", "spec", "containers", 0, "args").([]any); len(args) != 1 {
			t.Errorf("%s args = %v, want the command alone (migrate at start)", str(d, "metadata", "name"), args)
		}
	}

	// No Secret named for DATABASE_URL: refused, saying which value.
	if _, err := render(t, nil, "secrets.databaseURL.name="); err == nil || !strings.Contains(err.Error(), "secrets.databaseURL.name") {
		t.Errorf("no database Secret: %v, want an error naming secrets.databaseURL.name", err)
	}
}
