package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is one consentsync process (serve, work, migrate …) started by a
// Cluster. Its stderr and stdout go to LogPath; the last lines are printed
// when the test fails.
type Proc struct {
	// Name is the test's name for it ("serve-1", "work-1").
	Name string
	// Mode is the subcommand (serve, work, all, migrate).
	Mode string
	// Addr is HTTP_ADDR (host:port) for serve and all, else "".
	Addr string
	// OpsAddr is OPS_ADDR (admin API, /metrics, pprof) for serve, all and
	// work, else "".
	OpsAddr string
	// LogPath is its log file (JSON lines on stderr).
	LogPath string

	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	exitErr error
	started time.Time
	exited  time.Time
}

func startProc(t testing.TB, bin, name, mode, addr, logPath string, env []string, args ...string) (*Proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{mode}, args...)...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = lf, lf
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return nil, fmt.Errorf("harness: start %s: %w", name, err)
	}
	p := &Proc{Name: name, Mode: mode, Addr: addr, LogPath: logPath, cmd: cmd, done: make(chan struct{}), started: time.Now()}
	go func() {
		err := cmd.Wait()
		_ = lf.Close()
		p.mu.Lock()
		p.exitErr, p.exited = err, time.Now()
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// URL is "http://" + Addr.
func (p *Proc) URL() string { return "http://" + p.Addr }

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig (e.g. syscall.SIGTERM for a graceful stop).
func (p *Proc) Signal(sig os.Signal) error {
	if p.Exited() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil for status 0); it returns an error if it is still running.
func (p *Proc) Wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		if !p.Exited() {
			return fmt.Errorf("harness: %s still running after %s", p.Name, timeout)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// ExitedAt is when the process exited (zero while it runs).
func (p *Proc) ExitedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// Log returns the process's whole log so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// LogLines returns the log lines that contain every one of subs.
func (p *Proc) LogLines(subs ...string) []string {
	b, _ := os.ReadFile(p.LogPath)
	return grepLines(b, subs...)
}

// Tail returns the last n lines of the log.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.LogPath)
	return tail(b, n)
}

// Get does a GET of path with the admin token and a 3 s timeout, and
// returns the status and body: on the ops listener for the admin API,
// /metrics and pprof, else on the HTTP address.
func (p *Proc) Get(ctx context.Context, path string) (int, []byte, error) {
	for _, pre := range []string{"/v1/", "/metrics", "/debug/", "/ops/"} {
		if strings.HasPrefix(path, pre) {
			return httpGet(ctx, "http://"+p.OpsAddr+path)
		}
	}
	return httpGet(ctx, p.URL()+path)
}

var probeClient = &http.Client{Timeout: 3 * time.Second}

func httpGet(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	resp, err := probeClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		b.Write(buf[:n])
		if rerr != nil {
			break
		}
	}
	return resp.StatusCode, []byte(b.String()), nil
}

// WaitHTTP waits until GET path answers want (e.g. "/readyz", 200, or
// "/healthz", 200 when Redis is deliberately degraded). It fails early when
// the process exits, with the end of its log.
func (p *Proc) WaitHTTP(ctx context.Context, path string, want int, timeout time.Duration) error {
	var last string
	_, err := Eventually(ctx, timeout, 100*time.Millisecond, func(ctx context.Context) error {
		if p.Exited() {
			return Permanent(fmt.Errorf("%s exited: %v\n%s", p.Name, p.Wait(0), p.Tail(20)))
		}
		code, body, err := p.Get(ctx, path)
		if err != nil {
			last = err.Error()
			return fmt.Errorf("GET %s: %s", path, last)
		}
		if code != want {
			last = fmt.Sprintf("%d %s", code, strings.TrimSpace(string(body)))
			return fmt.Errorf("GET %s: %s", path, last)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("harness: %s: %w", p.Name, err)
	}
	return nil
}

// WaitLog waits until a log line contains every one of subs. It fails early
// when the process exits.
func (p *Proc) WaitLog(ctx context.Context, timeout time.Duration, subs ...string) error {
	_, err := Eventually(ctx, timeout, 100*time.Millisecond, func(context.Context) error {
		if len(p.LogLines(subs...)) > 0 {
			return nil
		}
		if p.Exited() {
			return Permanent(fmt.Errorf("%s exited: %v\n%s", p.Name, p.Wait(0), p.Tail(20)))
		}
		return fmt.Errorf("no log line with %q", subs)
	})
	if err != nil {
		return fmt.Errorf("harness: %s: %w", p.Name, err)
	}
	return nil
}

func logPath(dir, name string) string { return filepath.Join(dir, name+".log") }
