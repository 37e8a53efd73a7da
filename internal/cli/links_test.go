package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/testenv"
	"github.com/consentsync/consentsync/links"
	"github.com/consentsync/consentsync/service"
	"github.com/consentsync/consentsync/store"
	"github.com/consentsync/consentsync/worker"
)

// TestPrintLinks: `consentsync links` prints the RFC 8058 header values
// and the pages' links, each token verifying for its own purpose and
// naming the person's subject; the errors name what is wrong; the page
// view (service.Page) answers the rules' states.
func TestPrintLinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	id, _, err := st.InsertInbound(ctx, store.Inbound{Source: "form", Kind: "form", DedupKey: "k", Method: "POST", Path: "/webhooks/form"})
	if err != nil {
		t.Fatal(err)
	}
	sig := consent.Signal{Subject: consent.Subject{Email: "Nina.Links@Example.com"}, Channel: consent.ChannelEmail, Brand: "acme",
		Purpose: consent.PurposeMarketing, Status: consent.StatusGranted, OccurredAt: time.Now().UTC().Add(-time.Hour), Source: "form",
		Evidence: consent.Evidence{Checkbox: "on", WordingVersion: "v2"}}
	if _, err := worker.Reconcile(ctx, st, id, worker.Prepare([]consent.Signal{sig}, "FR", time.Now()), nil); err != nil {
		t.Fatal(err)
	}
	secret := strings.Repeat("k", 40)
	cfg, err := config.Parse([]byte("sources:\n  - {name: form, kind: form, brand: acme, secrets: [x]}\n"+
		"pages:\n  public_url: https://consent.example.com/\n  keys: [{id: k1, secret: "+secret+"}]\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	svc := &service.Service{Store: st, Config: cfg}
	var out bytes.Buffer
	if err := PrintLinks(ctx, &out, svc, "nina.links@example.com", "acme", "", ""); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"List-Unsubscribe: <https://consent.example.com/u/k1.", "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
		"preference centre (until ", "https://consent.example.com/p/k1.", "https://consent.example.com/c/k1."} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(strings.ToLower(s), "nina") {
		t.Fatalf("a link shows the address:\n%s", s)
	}
	l, err := svc.Links(ctx, "Nina.Links@Example.com", "acme", "email", "partners")
	if err != nil {
		t.Fatal(err)
	}
	sg := links.Signer{Keys: []links.Key{{ID: "k1", Secret: []byte(secret)}}}
	for url, p := range map[string]links.Purpose{l.UnsubscribeURL: links.Unsubscribe, l.PreferencesURL: links.Preferences, l.ConfirmURL: links.Confirm} {
		tok := url[strings.LastIndex(url, "/")+1:]
		c, err := sg.Verify(tok, p, time.Now())
		if err != nil || c.Brand != "acme" || c.ConsentPurpose != consent.PurposePartners {
			t.Fatalf("%s token: %+v %v", p, c, err)
		}
		v, err := svc.Page(ctx, c.SubjectID, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if v.Identifier.Email != "nina.links@example.com" || len(v.Toggles) != 2 || !v.Toggles[0].On || v.Toggles[0].Purpose != "marketing" ||
			v.Toggles[1].On || v.Toggles[1].Reason != "partners_need_opt_in" {
			t.Fatalf("page view %+v", v)
		}
	}
	if _, err := svc.Page(ctx, 999999, "acme"); !errors.Is(err, service.ErrUnknownSubject) {
		t.Fatalf("unknown subject id: %v", err)
	}
	for _, tc := range []struct {
		raw, brand, purpose string
		want                error
	}{
		{"nobody@example.com", "acme", "", service.ErrUnknownSubject},
		{"nina.links@example.com", "other", "", service.ErrBadQuestion},
		{"nina.links@example.com", "acme", "spam", service.ErrBadQuestion},
		{"not an address", "acme", "", service.ErrInvalidIdentifier},
	} {
		if _, err := svc.Links(ctx, tc.raw, tc.brand, "", tc.purpose); !errors.Is(err, tc.want) {
			t.Errorf("Links(%q, %q, %q) = %v, want %v", tc.raw, tc.brand, tc.purpose, err, tc.want)
		}
	}
	off := &service.Service{Store: st, Config: &config.Config{}}
	if _, err := off.Links(ctx, "nina.links@example.com", "acme", "", ""); !errors.Is(err, service.ErrPagesDisabled) {
		t.Fatalf("pages off: %v", err)
	}
}
