package deploy

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	_ "github.com/lib/pq" // Postgres driver
	"gopkg.in/yaml.v3"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/internal/fixtures"
	"github.com/consentsync/consentsync/internal/testenv"
)

// native runs services of a loaded compose project as processes of this
// machine, the way their containers would run: the image's entrypoint (the
// Dockerfile's: /consentsync is the binary built here) with the service's
// command and exactly the environment Compose gives the container (the
// image's ENV, HTTP_ADDR and OPS_ADDR, is not added: the consentsync
// service sets both, and the sandbox reads neither). What a
// container network and port publishing do is translated, and nothing
// else:
//   - a listen address on a container port (":8080") becomes the address
//     the port is published on (127.0.0.1:<published>), or a free loopback
//     port for a service that publishes none;
//   - "127.0.0.1:<container port>" (the container's own loopback, as in a
//     healthcheck) becomes that address too;
//   - a URL naming another service (postgres, redis, sandbox) names the
//     endpoint standing in for it: TEST_DATABASE_URL's server with a
//     database of this test's own, TEST_REDIS_URL's server and index, the
//     other service's native address;
//   - a value under a bind mount's target is the mount's host path.
type native struct {
	t       *testing.T
	bin     string
	addrs   map[string]map[uint32]string // service → container port → native host:port
	extern  map[string]*url.URL          // service → the real endpoint standing in for it
	workdir string
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// listenPort is the port of a listen address of every interface (":8080",
// "0.0.0.0:8080"), or of the container's loopback when loopback is true.
func listenPort(v string, loopback bool) (uint32, bool) {
	host, port, err := net.SplitHostPort(v)
	if err != nil || !(host == "" || host == "0.0.0.0" || host == "::" || loopback && host == "127.0.0.1") {
		return 0, false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return uint32(n), err == nil
}

// rewrite translates one value (an environment value or a command argument)
// of service svc.
func (n *native) rewrite(svc types.ServiceConfig, v string) string {
	if p, ok := listenPort(v, true); ok {
		if a, ok := n.addrs[svc.Name][p]; ok {
			return a
		}
	}
	if u, err := url.Parse(v); err == nil && u.Host != "" {
		host, port := u.Hostname(), u.Port()
		p, _ := strconv.ParseUint(port, 10, 16)
		switch {
		case n.extern[host] != nil:
			e := n.extern[host]
			u.Host, u.User, u.Path = e.Host, e.User, e.Path
			return u.String()
		case n.addrs[host][uint32(p)] != "":
			u.Host = n.addrs[host][uint32(p)]
			return u.String()
		case host == "127.0.0.1" && n.addrs[svc.Name][uint32(p)] != "":
			u.Host = n.addrs[svc.Name][uint32(p)]
			return u.String()
		}
	}
	for _, m := range svc.Volumes {
		if m.Type == types.VolumeTypeBind && (v == m.Target || strings.HasPrefix(v, m.Target+"/")) {
			src, _ := bind(svc, v)
			return src
		}
	}
	return v
}

// argv is the service's entrypoint (the image's when the service sets
// none) and command, the binary's container path mapped to the one built
// here, every argument rewritten.
func (n *native) argv(svc types.ServiceConfig, entrypoint []string, cmd []string) []string {
	if len(svc.Entrypoint) > 0 {
		entrypoint = svc.Entrypoint
	}
	var out []string
	for _, a := range append(slices.Clone(entrypoint), cmd...) {
		if a == "/consentsync" {
			a = n.bin
		}
		out = append(out, n.rewrite(svc, a))
	}
	return out
}

// environ is the container's environment, rewritten.
func (n *native) environ(svc types.ServiceConfig) []string {
	var out []string
	for k, v := range environ(svc) {
		out = append(out, k+"="+n.rewrite(svc, v))
	}
	return out
}

// start runs the service until the test ends and returns its output so
// far on demand.
func (n *native) start(svc types.ServiceConfig, entrypoint []string) func() string {
	n.t.Helper()
	args := n.argv(svc, entrypoint, svc.Command)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = n.environ(svc)
	cmd.Dir = n.workdir
	out := &fixtures.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("%s: %v", svc.Name, err)
	}
	n.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			n.t.Errorf("%s did not stop within 10s of SIGTERM", svc.Name)
		}
		if n.t.Failed() {
			n.t.Logf("%s %q output:\n%s", svc.Name, args[1:], out.String())
		}
	})
	return out.String
}

// waitHealthy runs the service's healthcheck test natively — the exec form
// ["CMD", ...] only: the image has no shell — until it exits 0, as Docker
// would (https://docs.docker.com/reference/compose-file/services/#healthcheck),
// but probing every 200ms instead of every interval, within start_period +
// retries × interval, and at most until deadline.
func (n *native) waitHealthy(svc types.ServiceConfig, entrypoint []string, deadline time.Time, output func() string) {
	n.t.Helper()
	hc := svc.HealthCheck
	if hc == nil || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
		n.t.Fatalf("%s: healthcheck %v is not the exec form", svc.Name, hc)
	}
	if hc.StartPeriod != nil && hc.Interval != nil && hc.Retries != nil {
		if d := time.Now().Add(time.Duration(*hc.StartPeriod) + time.Duration(*hc.Retries)*time.Duration(*hc.Interval)); d.Before(deadline) {
			deadline = d
		}
	}
	args := n.argv(svc, nil, hc.Test[1:])
	for {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = n.environ(svc)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s never healthy: %q: %v %s\nservice output:\n%s", svc.Name, args[1:], err, out, output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dockerEntrypoint is the Dockerfile's ENTRYPOINT, exec form.
func dockerEntrypoint(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.EqualFold(f[0], "ENTRYPOINT") {
			var e []string
			if err := json.Unmarshal([]byte(strings.Join(f[1:], " ")), &e); err != nil {
				t.Fatalf("ENTRYPOINT %s: not the exec form: %v", l, err)
			}
			return e
		}
	}
	t.Fatal("the Dockerfile has no ENTRYPOINT")
	return nil
}

// ownDatabase creates an empty database on TEST_DATABASE_URL's server
// (consentsync migrates it at start, as on a first `up`) and drops it when
// the test ends.
func ownDatabase(t *testing.T, admin string) *url.URL {
	t.Helper()
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	db, err := sql.Open("postgres", admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "cscompose_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("TEST_DATABASE_URL (%s): create database: %v", u.Redacted(), err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u
}

// ownRedis is the Redis database this test uses: an index of
// TEST_REDIS_URL's server leased the way every test leases one
// (testenv.Redis: flushed, and released when the test ends), whatever
// index the URL names. The leases span indexes 1..15 and ignore that
// index, so using it directly could share, and flush, another test's.
func ownRedis(t *testing.T) *url.URL {
	t.Helper()
	u, err := url.Parse(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestComposeNative starts the default stack's consentsync service as
// `docker compose up` would — command, environment, mounted configuration
// and healthcheck from the loaded project — but as processes of this
// machine (there is no Docker here): real Postgres and Redis stand in for
// their services, and the sandbox service runs from the same binary with
// its own command. Once the compose healthcheck passes, the form-signup
// fixture (signed with the secret the mounted configuration gives that
// source) goes to the published webhook port, and the admin API on the
// published ops port, with the compose environment's admin token, shows
// the consent; the mailchimp-unsubscribe fixture (authenticated by its URL
// key) then reaches every other destination, each a fake of the sandbox. What this catches that the
// static tests cannot: an environment, command or mount that loads but
// does not run.
func TestComposeNative(t *testing.T) {
	t.Parallel()
	dbURL, redisURL := os.Getenv("TEST_DATABASE_URL"), os.Getenv("TEST_REDIS_URL")
	if dbURL == "" || redisURL == "" {
		t.Skip("TEST_DATABASE_URL and TEST_REDIS_URL name the Postgres and Redis standing in for the compose services; unset, so the stack is not run")
	}
	// The published ports move off 8080/9090, which this machine may use.
	c := loader{env: map[string]string{"CONSENTSYNC_HTTP_PORT": freePort(t), "CONSENTSYNC_OPS_PORT": freePort(t)}}.mustLoad(t)
	app, err := c.GetService("consentsync")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := c.GetService("sandbox")
	if err != nil {
		t.Fatal(err)
	}

	rURL := ownRedis(t)
	n := &native{
		t:      t,
		bin:    filepath.Join(t.TempDir(), "consentsync"),
		addrs:  map[string]map[uint32]string{},
		extern: map[string]*url.URL{"postgres": ownDatabase(t, dbURL), "redis": rURL},
	}
	n.workdir, _ = filepath.Abs(root)
	for _, s := range c.Services {
		n.addrs[s.Name] = map[uint32]string{}
		for _, p := range s.Ports {
			n.addrs[s.Name][p.Target] = net.JoinHostPort(p.HostIP, p.Published)
		}
	}
	// The sandbox publishes nothing: it listens where its command says,
	// on a free loopback port here.
	for i, a := range sb.Command {
		if a == "-addr" && i+1 < len(sb.Command) {
			if p, ok := listenPort(sb.Command[i+1], false); ok {
				n.addrs[sb.Name][p] = "127.0.0.1:" + freePort(t)
			}
		}
	}
	if len(n.addrs[sb.Name]) == 0 {
		t.Fatalf("sandbox command %q names no listen address", sb.Command)
	}

	build := exec.Command("go", "build", "-o", n.bin, "./cmd/consentsync")
	build.Dir = n.workdir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	entry := dockerEntrypoint(t)
	// The build is not the stack's start-up (a cold build cache takes
	// minutes on a small machine; a warm one, seconds).
	deadline := time.Now().Add(45 * time.Second)

	sbOut := n.start(sb, entry)
	n.waitHealthy(sb, entry, deadline, sbOut)
	appOut := n.start(app, entry)
	n.waitHealthy(app, entry, deadline, appOut)

	env := environ(app)
	webhooks := "http://" + n.addrs[app.Name][8080]
	ops := "http://" + n.addrs[app.Name][9090]
	if n.addrs[app.Name][8080] == "" || n.addrs[app.Name][9090] == "" {
		t.Fatalf("consentsync publishes %q: want the webhook (8080) and ops (9090) ports", ports(app))
	}
	cfg, err := config.Parse(readMounted(t, app, env[config.EnvConfigFile]), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	source := func(name string) config.Source {
		for _, s := range cfg.Sources {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("the mounted configuration has no source %s", name)
		return config.Source{}
	}

	// A signed sign-up, re-signed with the compose configuration's secret
	// for that source (the fixture's own is another).
	f, err := fixtures.Get("form-signup")
	if err != nil {
		t.Fatal(err)
	}
	var fsrc config.Source
	if err := yaml.Unmarshal(f.Source, &fsrc); err != nil {
		t.Fatal(err)
	}
	src := source(fsrc.Name)
	if src.Signature == nil || fsrc.Signature == nil || *src.Signature != *fsrc.Signature || src.Signature.Algorithm != "sha256" || src.Signature.Encoding != "hex" {
		t.Fatalf("%s: the compose configuration signs as %+v, the fixture as %+v: the test re-signs with hex HMAC-SHA256 only", src.Name, src.Signature, fsrc.Signature)
	}
	mac := hmac.New(sha256.New, []byte(src.Secrets[0]))
	mac.Write(f.Body)
	h := http.Header{}
	for k, v := range f.Request.Headers {
		h.Set(k, v)
	}
	h.Set(src.Signature.Header, src.Signature.Prefix+hex.EncodeToString(mac.Sum(nil)))
	post(t, webhooks+f.Request.Path, h, f.Body, f.Expect.Status)

	want := f.Expect.Signals[0]
	var view struct {
		Consents []struct {
			Channel, Brand, Purpose, Status string
		} `json:"consents"`
		Suppressions []struct {
			Destination, Action, Status string
		} `json:"suppressions"`
	}
	subject := func(email string) bool {
		req, _ := http.NewRequest(http.MethodGet, ops+"/v1/subjects/"+url.PathEscape(email), nil)
		req.Header.Set("Authorization", "Bearer "+env["CONSENTSYNC_ADMIN_TOKEN"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("admin API: %v", err)
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusNotFound: // not processed yet
			return false
		case http.StatusOK:
		default:
			t.Fatalf("admin API with the compose admin token: HTTP %d", resp.StatusCode)
		}
		view.Consents, view.Suppressions = nil, nil
		if err := json.NewDecoder(resp.Body).Decode(&view); err != nil {
			t.Fatalf("admin API: %v", err)
		}
		return true
	}
	waitFor(t, deadline, "the sign-up in the admin API", appOut, func() bool {
		if !subject(want.Email) {
			return false
		}
		for _, c := range view.Consents {
			if c.Channel == want.Channel && c.Brand == want.Brand && c.Purpose == want.Purpose && c.Status == want.Status {
				return true
			}
		}
		return false
	})

	// A withdrawal: pushed to every other destination, each the sandbox's
	// fake.
	f, err = fixtures.Get("mailchimp-unsubscribe")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(f.Source, &fsrc); err != nil {
		t.Fatal(err)
	}
	h = http.Header{}
	for k, v := range f.Request.Headers {
		h.Set(k, v)
	}
	post(t, webhooks+f.Request.Path+"?key="+url.QueryEscape(source(fsrc.Name).Secrets[0]), h, f.Body, f.Expect.Status)
	waitFor(t, deadline, "the withdrawal sent to every other destination", func() string { return fmt.Sprintf("%+v\n%s", view, appOut()) }, func() bool {
		if !subject(f.Expect.Signals[0].Email) {
			return false
		}
		sent := map[string]bool{}
		for _, s := range view.Suppressions {
			if s.Action == "suppress" && s.Status == "sent" {
				sent[s.Destination] = true
			}
		}
		for _, d := range cfg.Destinations {
			// Mailchimp's own unsubscribe is not pushed back to it (the
			// echo rule, worker.Route.Matches).
			if d.Name != fsrc.Name && !sent[d.Name] {
				return false
			}
		}
		return true
	})
}

func post(t *testing.T, u string, h http.Header, body []byte, want int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		t.Fatalf("POST %s: HTTP %d %s, want %d", req.URL.Path, resp.StatusCode, b.String(), want)
	}
}

func waitFor(t *testing.T, deadline time.Time, what string, output func() string, ok func() bool) {
	t.Helper()
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\nconsentsync output:\n%s", what, output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
