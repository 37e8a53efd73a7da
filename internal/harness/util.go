package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("harness: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// dumpFile prints the last n lines of a log file to the test log.
func dumpFile(t testing.TB, what, path string, n int) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("--- %s (%s): %v", what, path, err)
		return
	}
	t.Logf("--- %s (%s), last %d lines:\n%s", what, path, n, tail(b, n))
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Permanent wraps err so that Eventually stops polling at once and returns
// it (a process that exited will not become ready).
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Eventually polls cond every interval until it returns nil or timeout has
// passed; it returns how long it took, or the last error from cond wrapped
// with the timeout. An error wrapped by Permanent ends it at once.
func Eventually(ctx context.Context, timeout, interval time.Duration, cond func(context.Context) error) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := cond(ctx)
		if err == nil {
			return time.Since(start), nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return time.Since(start), perm.err
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("not within %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), errors.Join(ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// grepLines returns the lines of b containing every one of subs.
func grepLines(b []byte, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		ok := true
		for _, s := range subs {
			if !strings.Contains(l, s) {
				ok = false
				break
			}
		}
		if ok && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// grepAny returns the lines of b containing at least one of subs.
func grepAny(b []byte, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// OwnerFile is written in every directory the harness creates outside
// t.TempDir (Postgres clusters, the binary): the test process's pid, so
// that scripts/chaos.sh removes only what a dead test run left behind.
const OwnerFile = "owner.pid"

func writeOwner(dir string) {
	_ = os.WriteFile(filepath.Join(dir, OwnerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}
