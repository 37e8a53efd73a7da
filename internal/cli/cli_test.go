package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/testenv"
	"github.com/consentsync/consentsync/service"
	"github.com/consentsync/consentsync/store"
	"github.com/consentsync/consentsync/worker"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.DropTemplate()
	os.Exit(code)
}

// TestPrintSubject: `consentsync subject` shows the state, the answer for
// each brand × channel × purpose with its basis, and the history.
func TestPrintSubject(t *testing.T) {
	ctx := context.Background()
	st := testenv.Store(t)
	id, _, err := st.InsertInbound(ctx, store.Inbound{Source: "form", Kind: "form", DedupKey: "k", Method: "POST", Path: "/webhooks/form"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Hour)
	sig := consent.Signal{Subject: consent.Subject{Email: "Support.Case@Example.com"}, Channel: consent.ChannelEmail, Brand: "acme",
		Purpose: consent.PurposeMarketing, Status: consent.StatusGranted, OccurredAt: at, Source: "form",
		Evidence: consent.Evidence{Checkbox: "on", WordingVersion: "v2"}}
	if _, err := worker.Reconcile(ctx, st, id, worker.Prepare([]consent.Signal{sig}, "FR", time.Now()), nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("sources:\n  - {name: form, kind: form, brand: acme, secrets: [x]}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	svc := &service.Service{Store: st, Config: cfg}
	if err := PrintSubject(ctx, &out, svc, "support.case@EXAMPLE.com"); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"Support.Case@Example.com", "profile: prospect", "acme/email/marketing", "granted",
		"MAY WE SEND?", "acme   email    marketing  true     consent", "partners_need_opt_in", "opt_out_regime", "HISTORY", "applied"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
