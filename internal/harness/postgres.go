package harness

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq" // Postgres driver for the audit's queries
)

// PGUser is the unprivileged system user a Postgres cluster runs as when
// the test process is root (Postgres refuses to run as root). It is created
// with useradd when missing.
const PGUser = "consentsync-test"

// StopMode is how Postgres is stopped (pg_ctl -m).
type StopMode string

// Stop modes.
const (
	// Fast rolls back open transactions, disconnects clients and shuts
	// down cleanly (a checkpoint).
	Fast StopMode = "fast"
	// Immediate aborts every server process at once, like a crash: the
	// next start runs crash recovery.
	Immediate StopMode = "immediate"
)

// Postgres is a Postgres cluster owned by one test: its own data directory
// (initdb), its own port on 127.0.0.1 (TCP only, no Unix socket), trust
// authentication for the superuser "postgres". It is stopped and removed
// at the test's end.
type Postgres struct {
	// Port is the TCP port it listens on (kept across restarts).
	Port int
	// Dir holds the data directory ("data") and the server log
	// ("postgres.log"); it belongs to PGUser when the test runs as root.
	Dir string

	bin     string
	asUser  string // "" when not root: run the binaries directly
	t       testing.TB
	mu      sync.Mutex
	running bool
}

// pgBinDir finds the directory of initdb and pg_ctl: the newest
// /usr/lib/postgresql/*/bin that has both, else the directory of the initdb
// on PATH.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if isFile(filepath.Join(d, "initdb")) && isFile(filepath.Join(d, "pg_ctl")) && isFile(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(r), nil
		}
		return filepath.Dir(p), nil
	}
	return "", errors.New("harness: no Postgres server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on PATH: install the postgresql package (scripts/chaos.sh does)")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// ensurePGUser creates PGUser when missing (a system user without a home
// or a login shell) and returns its uid and gid.
func ensurePGUser() (uid, gid int, err error) {
	u, err := user.Lookup(PGUser)
	if err != nil {
		out, cerr := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PGUser).CombinedOutput()
		if cerr != nil && !strings.Contains(string(out), "already exists") {
			return 0, 0, fmt.Errorf("harness: useradd %s: %v: %s", PGUser, cerr, out)
		}
		if u, err = user.Lookup(PGUser); err != nil {
			return 0, 0, fmt.Errorf("harness: user %s: %w", PGUser, err)
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// StartPostgres creates a cluster with initdb in a new directory, starts it
// on a free port and registers its removal with t.Cleanup. When the test
// runs as root the directory belongs to PGUser and every Postgres binary
// runs as that user (runuser). On failure the server log is printed.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its parents are private to root, and the cluster's
	// user must be able to reach its directory.
	dir, err := os.MkdirTemp("", "consentsync-chaos-pg-")
	if err != nil {
		t.Fatal(err)
	}
	writeOwner(dir)
	p := &Postgres{Dir: dir, bin: bin, t: t}
	t.Cleanup(func() {
		if t.Failed() {
			dumpFile(t, "postgres log", filepath.Join(dir, "postgres.log"), 60)
		}
		p.stop(Immediate)
		_ = os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		uid, gid, err := ensurePGUser()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		p.asUser = PGUser
	}
	if p.Port, err = FreePort(); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	// -N: no fsync of the new files (only the cluster's creation; the
	// server itself runs with fsync on).
	if out, err := p.run(2*time.Minute, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "-N"); err != nil {
		t.Fatalf("harness: initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf(`
port = %d
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
shared_buffers = 64MB
log_min_messages = warning
log_line_prefix = '%%m [%%p] '
`, p.Port)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs one Postgres binary (as PGUser when root) and returns its output.
func (p *Postgres) run(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	path := filepath.Join(p.bin, name)
	var cmd *exec.Cmd
	if p.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", p.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = p.Dir
	return cmd.CombinedOutput()
}

// URL is the libpq URL of database db on this cluster (superuser, trust).
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// Start starts the server and waits until it accepts connections (pg_ctl
// -w). Starting a running cluster is an error.
func (p *Postgres) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	out, err := p.run(2*time.Minute, "pg_ctl", "-D", filepath.Join(p.Dir, "data"), "-l", filepath.Join(p.Dir, "postgres.log"), "-w", "-t", "90", "start")
	if err != nil {
		return fmt.Errorf("harness: pg_ctl start: %v\n%s", err, out)
	}
	p.running = true
	return nil
}

// Stop stops the server in mode and waits until it has exited.
func (p *Postgres) Stop(mode StopMode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopLocked(mode)
}

func (p *Postgres) stop(mode StopMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.stopLocked(mode)
}

func (p *Postgres) stopLocked(mode StopMode) error {
	if !p.running {
		return nil
	}
	out, err := p.run(2*time.Minute, "pg_ctl", "-D", filepath.Join(p.Dir, "data"), "-m", string(mode), "-w", "-t", "90", "stop")
	if err != nil {
		return fmt.Errorf("harness: pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
	p.running = false
	return nil
}

// Restart stops the server in mode and starts it again at once.
func (p *Postgres) Restart(mode StopMode) error {
	if err := p.Stop(mode); err != nil {
		return err
	}
	return p.Start()
}

// Open opens database db on this cluster (for the audit and for checks);
// it is closed at the test's end.
func (p *Postgres) Open(db string) *sql.DB {
	d, err := sql.Open("postgres", p.URL(db))
	if err != nil {
		p.t.Fatal(err)
	}
	d.SetMaxOpenConns(4)
	p.t.Cleanup(func() { _ = d.Close() })
	return d
}
