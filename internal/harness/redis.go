package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures a Redis server.
type RedisOptions struct {
	// MaxMemory is redis-server's maxmemory ("" = none), e.g. "4mb".
	MaxMemory string
	// Policy is maxmemory-policy ("" = Redis's default, noeviction).
	Policy string
}

// Redis is a redis-server owned by one test: its own port on 127.0.0.1,
// no persistence (no RDB snapshots, no AOF), so a restart after Kill
// starts empty. It is killed at the test's end.
type Redis struct {
	// Port is its TCP port (kept across restarts).
	Port int
	// LogPath is the server's log (every start appends to it).
	LogPath string

	opts   RedisOptions
	dir    string
	t      testing.TB
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	client *redis.Client
}

// StartRedis starts redis-server on a free port and registers its removal
// with t.Cleanup. On failure the server log is printed.
func StartRedis(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("harness: redis-server not on PATH: install the redis-server package (scripts/chaos.sh does)")
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &Redis{Port: port, LogPath: filepath.Join(dir, "redis.log"), opts: o, dir: dir, t: t}
	t.Cleanup(func() {
		if t.Failed() {
			dumpFile(t, "redis log", r.LogPath, 30)
		}
		r.Kill()
		if r.client != nil {
			_ = r.client.Close()
		}
	})
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

// URL is the redis:// URL of DB index 0 on this server.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// Start starts the server (empty) and waits until it answers PING.
// Starting a running server is an error.
func (r *Redis) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return fmt.Errorf("harness: redis already running")
	}
	args := []string{"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--protected-mode", "no", "--daemonize", "no"}
	if r.opts.MaxMemory != "" {
		args = append(args, "--maxmemory", r.opts.MaxMemory)
	}
	if r.opts.Policy != "" {
		args = append(args, "--maxmemory-policy", r.opts.Policy)
	}
	lf, err := os.OpenFile(r.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return fmt.Errorf("harness: redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = lf.Close(); close(done) }()
	r.cmd, r.done = cmd, done
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = Eventually(ctx, 15*time.Second, 50*time.Millisecond, func(ctx context.Context) error {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start")
		default:
		}
		return r.Client().Ping(ctx).Err()
	})
	if err != nil {
		return fmt.Errorf("harness: redis-server not answering: %w", err)
	}
	return nil
}

// Kill sends SIGKILL and waits for the server to exit: everything it held
// is gone.
func (r *Redis) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.cmd, r.done = nil, nil
}

// Client is a client of DB 0 (one per Redis, reused; it reconnects after a
// restart).
func (r *Redis) Client() *redis.Client {
	if r.client == nil {
		r.client = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.Port), MaxRetries: -1, DialTimeout: time.Second})
	}
	return r.client
}

// FlushAll runs FLUSHALL: every key of every DB is dropped (queued tasks
// included), the server keeps running.
func (r *Redis) FlushAll(ctx context.Context) error {
	return r.Client().FlushAll(ctx).Err()
}

// Info returns the fields of INFO section (e.g. "memory", "stats").
func (r *Redis) Info(ctx context.Context, section string) (map[string]string, error) {
	s, err := r.Client().Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok {
			out[k] = v
		}
	}
	return out, nil
}

// SetConfig runs CONFIG SET key value (e.g. maxmemory once the processes
// are connected).
func (r *Redis) SetConfig(ctx context.Context, key, value string) error {
	return r.Client().ConfigSet(ctx, key, value).Err()
}
