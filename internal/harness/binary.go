package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// ModuleRoot is the directory of the go.mod of the package under test
// (`go env GOMOD` from the working directory).
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("harness: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("harness: not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// EnvBinary names a variable that, when set, is the path of a prebuilt
// consentsync binary Binary returns instead of building one (e.g. one built
// from another tree).
const EnvBinary = "CONSENTSYNC_CHAOS_BIN"

// Binary builds ./cmd/consentsync once per test binary run, into a
// temporary directory, and returns its path (or the binary EnvBinary names). The core may be mid-change
// when the build runs (other engineers edit it concurrently): a failed
// build is retried twice, 30 s apart, before the test fails with the
// compiler's output.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv(EnvBinary); p != "" {
			buildPath = p
			if !isFile(p) {
				buildErr = fmt.Errorf("harness: %s=%s: no such file", EnvBinary, p)
			}
			return
		}
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		if buildDir, err = os.MkdirTemp("", "consentsync-chaos-bin-"); err != nil {
			buildErr = err
			return
		}
		writeOwner(buildDir)
		buildPath = filepath.Join(buildDir, "consentsync")
		for attempt := 1; attempt <= 3; attempt++ {
			start := time.Now()
			cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/consentsync")
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			if err == nil {
				buildErr = nil
				t.Logf("harness: built consentsync in %s", time.Since(start).Round(time.Millisecond))
				return
			}
			buildErr = fmt.Errorf("harness: go build ./cmd/consentsync (attempt %d): %v\n%s", attempt, err, out)
			if attempt < 3 {
				t.Logf("%v; retrying in 30 s (the core may be mid-change)", buildErr)
				time.Sleep(30 * time.Second)
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Main is for a TestMain: it runs the tests, then removes the binary Binary
// built, and returns the exit code for os.Exit.
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	return code
}
