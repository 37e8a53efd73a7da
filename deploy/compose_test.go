// Package deploy holds what runs consentsync elsewhere than `go run`:
// docker-compose.yml (at the repository root) and its overrides, the
// Prometheus and Grafana provisioning. Docker is not needed to test it: the
// tests read the compose files the way Compose does (interpolation,
// override merge) and check what makes a first `docker compose up` fail.
package deploy

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/consentsync/consentsync/config"
)

const root = ".."

// compose is the part of the Compose specification the tests read
// (https://github.com/compose-spec/compose-spec/blob/main/spec.md).
type compose struct {
	Name     string             `yaml:"name"`
	Version  string             `yaml:"version"`
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Profiles    []string          `yaml:"profiles"`
	Environment map[string]string `yaml:"environment"`
	EnvFile     any               `yaml:"env_file"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
}

// interpolation is Compose's ${VAR}, ${VAR:-default}, ${VAR-default},
// ${VAR:?error}, ${VAR?error} (spec.md, "Interpolation").
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate replaces every ${...} of text with the value env gives, as
// Compose does with the shell's environment and the project's .env; a
// required variable that is missing is reported.
func interpolate(t *testing.T, text string, env map[string]string) string {
	t.Helper()
	return interpolation.ReplaceAllStringFunc(text, func(m string) string {
		p := interpolation.FindStringSubmatch(m)
		v, set := env[p[1]]
		switch p[2] {
		case ":-":
			if v == "" {
				return p[3]
			}
		case "-":
			if !set {
				return p[3]
			}
		case ":?", "?":
			if !set || p[2] == ":?" && v == "" {
				t.Errorf("compose would stop: %s is required (%s)", p[1], p[3])
			}
		}
		return v
	})
}

func load(t *testing.T, file string, env map[string]string) compose {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal([]byte(interpolate(t, string(b), env)), &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return c
}

// mount is a volume entry "source:target[:mode]".
type mount struct{ source, target string }

func mounts(s service) []mount {
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			out = append(out, mount{parts[0], parts[1]})
		}
	}
	return out
}

func bind(s service, target string) (string, bool) {
	for _, m := range mounts(s) {
		if m.target == target && (strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/")) {
			return m.source, true
		}
	}
	return "", false
}

// readMounted reads the host file mounted at target.
func readMounted(t *testing.T, s service, target string) []byte {
	t.Helper()
	src, ok := bind(s, target)
	if !ok {
		t.Fatalf("nothing is mounted at %s (volumes %q)", target, s.Volumes)
	}
	b, err := os.ReadFile(filepath.Join(root, src))
	if err != nil {
		t.Fatalf("mounted %s: %v", target, err)
	}
	return b
}

// TestComposeFirstStart: `docker compose up` with no .env and an empty
// environment starts Postgres, Redis, the sandbox and consentsync, and
// consentsync's configuration loads — with the environment Compose gives
// the container and nothing else, every secret present — against its own
// database and the sandbox. Only consentsync publishes ports, each
// configurable; every default service has a healthcheck; the app's works in
// a distroless image.
func TestComposeFirstStart(t *testing.T) {
	t.Parallel()
	c := load(t, "docker-compose.yml", map[string]string{})
	if c.Version != "" {
		t.Error(`top-level "version" is obsolete (Compose warns)`)
	}
	var defaults []string
	for name, s := range c.Services {
		if len(s.Profiles) > 0 {
			continue
		}
		defaults = append(defaults, name)
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s has no healthcheck", name)
		}
		if name != "consentsync" && len(s.Ports) > 0 {
			t.Errorf("service %s publishes %q on the host: a Postgres or Redis already there makes `up` fail", name, s.Ports)
		}
		for dep, d := range s.DependsOn {
			if dp, ok := c.Services[dep]; !ok || len(dp.Profiles) > 0 {
				t.Errorf("%s depends on %s, which a plain `up` does not start", name, dep)
			} else if d.Condition == "service_healthy" && dp.Healthcheck == nil {
				t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
	}
	slices.Sort(defaults)
	if want := []string{"consentsync", "postgres", "redis", "sandbox"}; !slices.Equal(defaults, want) {
		t.Errorf("services of a plain `up`: %q, want %q", defaults, want)
	}

	app := c.Services["consentsync"]
	if got := app.Healthcheck.Test; !slices.Equal(got, []string{"CMD", "/consentsync", "healthcheck"}) {
		t.Errorf("app healthcheck %q: want the exec form of the binary's own subcommand (no shell in distroless)", got)
	}
	if app.EnvFile != nil {
		t.Errorf("the sandbox stack reads an env_file (%v): a first start has no .env", app.EnvFile)
	}

	// Ports: the webhook and ops listeners only, the ops one on the
	// loopback, both movable.
	if len(app.Ports) != 2 {
		t.Fatalf("consentsync ports %q", app.Ports)
	}
	moved := load(t, "docker-compose.yml", map[string]string{"CONSENTSYNC_HTTP_PORT": "18080", "CONSENTSYNC_OPS_PORT": "19090"}).Services["consentsync"].Ports
	if !slices.Equal(moved, []string{"127.0.0.1:18080:8080", "127.0.0.1:19090:9090"}) {
		t.Errorf("ports with CONSENTSYNC_HTTP_PORT/CONSENTSYNC_OPS_PORT: %q", moved)
	}

	// The environment the container gets, read as consentsync reads it.
	proc, err := config.ParseProcess(app.Environment)
	if err != nil {
		t.Fatal(err)
	}
	db, err := url.Parse(proc.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	pg := c.Services["postgres"]
	if db.Path != "/"+pg.Environment["POSTGRES_DB"] || db.Path == "/postgres" || db.Hostname() != "postgres" {
		t.Errorf("DATABASE_URL %s: want the postgres service's own database %q, not the maintenance one", db.Redacted(), pg.Environment["POSTGRES_DB"])
	}
	if pw, _ := db.User.Password(); pw != pg.Environment["POSTGRES_PASSWORD"] {
		t.Error("DATABASE_URL's password is not the postgres service's")
	}
	if r, err := url.Parse(proc.RedisURL); err != nil || r.Hostname() != "redis" {
		t.Errorf("REDIS_URL %s", proc.RedisURL)
	}
	for addr, port := range map[string]string{proc.HTTPAddr: "8080", proc.OpsAddr: "9090"} {
		host, p, err := net.SplitHostPort(addr)
		if err != nil || p != port || host != "" && host != "0.0.0.0" {
			t.Errorf("listen address %q: want every interface of the container on %s, the port published", addr, port)
		}
	}
	if proc.AdminToken == "" || proc.ViewerToken == "" {
		t.Error("the sandbox stack has no admin or viewer token: the queue UI would answer 403")
	}

	// The configuration it mounts loads with that environment alone.
	cfgPath := app.Environment[config.EnvConfigFile]
	raw := readMounted(t, app, cfgPath)
	cfg, err := config.Parse(raw, func(k string) (string, bool) { v, ok := app.Environment[k]; return v, ok })
	if err != nil {
		t.Fatalf("the mounted configuration does not load with compose's environment: %v", err)
	}
	if len(cfg.Sources) == 0 || len(cfg.Destinations) == 0 {
		t.Fatal("the sandbox configuration has no source or no destination")
	}
	sb := c.Services["sandbox"]
	sbPort := ""
	for i, a := range sb.Command {
		if a == "-addr" && i+1 < len(sb.Command) {
			_, sbPort, _ = net.SplitHostPort(sb.Command[i+1])
		}
	}
	if sb.Command[0] != "sandbox" || app.Environment["SANDBOX_URL"] != "http://sandbox:"+sbPort {
		t.Errorf("SANDBOX_URL %q does not name the sandbox service (command %q)", app.Environment["SANDBOX_URL"], sb.Command)
	}
	for _, d := range cfg.Destinations {
		if !strings.HasPrefix(d.BaseURL, app.Environment["SANDBOX_URL"]+"/") {
			t.Errorf("destination %s pushes to %q, not the sandbox", d.Name, d.BaseURL)
		}
	}
	if !cfg.Server.MetricsOpen {
		t.Error("the sandbox configuration keeps /metrics closed: the observability profile's Prometheus scrapes without a token")
	}

	// Every file a service mounts exists (Docker would mount an empty
	// directory in its place).
	for name, s := range c.Services {
		for _, m := range mounts(s) {
			if strings.HasPrefix(m.source, ".") {
				if _, err := os.Stat(filepath.Join(root, m.source)); err != nil {
					t.Errorf("%s mounts %s: %v", name, m.source, err)
				}
			}
		}
	}
}

// TestComposeFeatures: nothing newer than Compose 2.20 (the oldest we
// support): env_file's "required" (2.24), "include" (2.20 is fine but
// unused), "develop" (2.22), inline config "content" (2.23.1),
// healthcheck "start_interval" (2.20.2 and Docker 25), "!reset"/"!override"
// tags (2.24).
func TestComposeFeatures(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"docker-compose.yml", "docker-compose.prod.yml", "deploy/compose/services-ports.yml"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		var n yaml.Node
		if err := yaml.Unmarshal(b, &n); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var walk func(*yaml.Node, string)
		walk = func(n *yaml.Node, path string) {
			if n.Tag == "!reset" || n.Tag == "!override" {
				t.Errorf("%s: %s uses %s (Compose 2.24)", f, path, n.Tag)
			}
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					k := n.Content[i].Value
					switch {
					case k == "required" && strings.Contains(path, "env_file"),
						k == "develop", k == "start_interval", k == "content" && strings.Contains(path, "configs"),
						k == "include" && path == "":
						t.Errorf("%s: %s.%s needs a Compose newer than 2.20", f, path, k)
					}
					walk(n.Content[i+1], path+"."+k)
				}
			}
			for _, c := range n.Content {
				if n.Kind != yaml.MappingNode {
					walk(c, path)
				}
			}
		}
		walk(&n, "")
	}
}

// TestComposeProd: with docker-compose.prod.yml the sandbox does not start,
// the real configuration is mounted and .env is required; without the
// secrets consentsync stops with one error naming every unset variable (not
// one per restart).
func TestComposeProd(t *testing.T) {
	t.Parallel()
	base := load(t, "docker-compose.yml", map[string]string{})
	over := load(t, "docker-compose.prod.yml", map[string]string{})
	if len(over.Services["sandbox"].Profiles) == 0 {
		t.Error("the prod override still starts the sandbox")
	}
	app, o := base.Services["consentsync"], over.Services["consentsync"]
	if o.EnvFile == nil {
		t.Error("the prod override does not read .env")
	}
	// Compose merges environment by name and volumes by target.
	env := map[string]string{}
	for k, v := range app.Environment {
		env[k] = v
	}
	for k, v := range o.Environment {
		env[k] = v
	}
	if env["CONSENTSYNC_ADMIN_TOKEN"] == "sandbox-admin-token" || env["CONSENTSYNC_VIEWER_TOKEN"] == "sandbox-viewer-token" {
		t.Error("prod keeps the sandbox's public tokens")
	}
	target := env[config.EnvConfigFile]
	raw := readMounted(t, o, target)
	want := map[string]bool{} // every variable the file uses outside comments
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).FindAllStringSubmatch(l, -1) {
			if _, ok := env[m[1]]; !ok {
				want[m[1]] = true
			}
		}
	}
	if len(want) < 2 {
		t.Fatalf("the prod configuration references %d secret(s); the test wants several", len(want))
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	_, err := config.Parse(raw, lookup)
	if err == nil {
		t.Fatal("the prod configuration loads without its secrets")
	}
	for v := range want {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("the start-up error does not name %s: %v", v, err)
		}
	}
	if strings.Count(err.Error(), "unset environment variables") != 1 {
		t.Errorf("want one error naming them all: %v", err)
	}
	// With them all set (as .env would), it loads.
	for v := range want {
		env[v] = "set-by-dot-env"
	}
	if _, err := config.Parse(raw, lookup); err != nil {
		t.Errorf("with every secret set: %v", err)
	}
}

// TestComposeObservability: the profile's Prometheus scrapes consentsync's
// ops listener and loads the alert rules from the file it mounts; Grafana
// gets Prometheus as its datasource and provisions the dashboard directory.
func TestComposeObservability(t *testing.T) {
	t.Parallel()
	c := load(t, "docker-compose.yml", map[string]string{})
	prom, graf := c.Services["prometheus"], c.Services["grafana"]
	for name, s := range map[string]service{"prometheus": prom, "grafana": graf} {
		if !slices.Equal(s.Profiles, []string{"observability"}) {
			t.Errorf("%s profiles %q, want [observability]", name, s.Profiles)
		}
	}
	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readMounted(t, prom, "/etc/prometheus/prometheus.yml"), &pc); err != nil {
		t.Fatal(err)
	}
	if len(pc.RuleFiles) == 0 {
		t.Fatal("Prometheus loads no rule file")
	}
	for _, rf := range pc.RuleFiles {
		var rules struct {
			Groups []struct {
				Rules []struct {
					Alert string `yaml:"alert"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(readMounted(t, prom, rf), &rules); err != nil || len(rules.Groups) == 0 {
			t.Errorf("rule file %s: %v (%d groups)", rf, err, len(rules.Groups))
		}
	}
	_, opsPort, _ := net.SplitHostPort(c.Services["consentsync"].Environment["OPS_ADDR"])
	if len(pc.ScrapeConfigs) == 0 || len(pc.ScrapeConfigs[0].StaticConfigs) == 0 ||
		!slices.Contains(pc.ScrapeConfigs[0].StaticConfigs[0].Targets, "consentsync:"+opsPort) || pc.ScrapeConfigs[0].MetricsPath != "/metrics" {
		t.Errorf("Prometheus does not scrape consentsync:%s/metrics: %+v", opsPort, pc.ScrapeConfigs)
	}

	var ds struct {
		Datasources []struct {
			URL string `yaml:"url"`
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy/grafana/provisioning/datasources/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &ds); err != nil || len(ds.Datasources) != 1 || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("Grafana datasource: %v %+v", err, ds)
	}
	if _, ok := bind(graf, "/etc/grafana/provisioning"); !ok {
		t.Error("Grafana's provisioning is not mounted")
	}
	var dp struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err = os.ReadFile(filepath.Join(root, "deploy/grafana/provisioning/dashboards/consentsync.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &dp); err != nil || len(dp.Providers) != 1 {
		t.Fatalf("dashboard provider: %v", err)
	}
	src, ok := bind(graf, dp.Providers[0].Options.Path)
	if !ok {
		t.Fatalf("the dashboard provider reads %s, where nothing is mounted", dp.Providers[0].Options.Path)
	}
	dash := filepath.Join(root, src, "consentsync.json")
	if _, err := os.Stat(dash); err != nil {
		t.Skipf("%s is not on this branch yet (the dashboard is written with the metrics work): %v", dash, err)
	}
}

// TestDockerfile: the image is distroless, its HEALTHCHECK is the binary's
// own subcommand in exec form, and it listens where compose publishes.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var from, health, entry, envs string
	for _, l := range strings.Split(string(b), "\n") {
		switch f := strings.Fields(l); {
		case len(f) == 0:
		case strings.EqualFold(f[0], "FROM"):
			from = f[1]
		case strings.EqualFold(f[0], "HEALTHCHECK"):
			health = l
		case strings.EqualFold(f[0], "ENTRYPOINT"):
			entry = strings.Join(f[1:], " ")
		case strings.EqualFold(f[0], "ENV"):
			envs += l
		}
	}
	if !strings.HasPrefix(from, "gcr.io/distroless/") {
		t.Errorf("final image %s is not distroless", from)
	}
	if !strings.HasSuffix(strings.TrimSpace(health), `CMD ["/consentsync", "healthcheck"]`) {
		t.Errorf("HEALTHCHECK %q: want the exec form of /consentsync healthcheck", health)
	}
	if entry != `["/consentsync"]` {
		t.Errorf("ENTRYPOINT %s: compose's healthcheck calls /consentsync", entry)
	}
	if !strings.Contains(envs, "OPS_ADDR=:9090") {
		t.Errorf("ENV %q: the ops listener must listen on the container's interfaces", envs)
	}
	di, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(di), "\n")
	for _, want := range []string{".env", "bin/", ".git/", "*.test"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}
