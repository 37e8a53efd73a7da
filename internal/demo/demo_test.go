package demo

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.DropTemplate()
	os.Exit(code)
}

// TestDemo runs `consentsync demo` against a database and Redis index of
// its own and checks that it succeeds and reports every part.
func TestDemo(t *testing.T) {
	redisURL := testenv.Redis(t)
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := strconv.Atoi(strings.TrimPrefix(u.Path, "/"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATABASE_URL", testenv.AdminURL())
	t.Setenv("REDIS_URL", redisURL)
	db := "cstest_demo_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Cleanup(func() { testenv.DropDatabase(db) })
	var out bytes.Buffer
	err = Run(context.Background(), Options{Database: db, RedisDB: idx, Timeout: 60 * time.Second}, &out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{"hubspot-optout-batch", "CONSENT RECORD", "SUPPRESSIONS PUSHED", "Lena.Martin@Example.com", "withdrawn", "OK: every webhook",
		"ONE-CLICK UNSUBSCRIBE", "List-Unsubscribe-Post: List-Unsubscribe=One-Click", "/p/demo.",
		"BACKFILL", "Early.Leaver@example.net (mailchimp-acme since 2021-03-04): held by SendGrid, Mailchimp unsubscribed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "PROBLEMS") {
		t.Errorf("demo reported problems:\n%s", out.String())
	}
}
