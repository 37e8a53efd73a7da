package postmark

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const secret = "pm-url-token-6a7c"

func fixture(t testing.TB) (fixtures.Fixture, *Source) {
	t.Helper()
	return fixtures.LoadSource(t, "postmark-unsubscribe", NewSource)
}

func TestFixture(t *testing.T) {
	f, src := fixture(t)
	b := f.Run(t, src)
	ev := b.Signals[0].Evidence
	if ev.Event != "ManualSuppression" || ev.ListID != "broadcast" || ev.EventID != "883953f4-6105-42a2-a16a-77a8eac79483" {
		t.Fatalf("evidence = %+v", ev)
	}
	// The documented key, computed here independently.
	sum := sha256.Sum256([]byte("jules.blanc@example.org\x00broadcast\x002025-11-20T10:40:00Z\x00true\x00"))
	if b.DedupKey != hex.EncodeToString(sum[:]) {
		t.Fatalf("dedup = %q", b.DedupKey)
	}
}

func TestVerify(t *testing.T) {
	f, _ := fixture(t)
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	tests := []struct {
		name    string
		secrets []string
		query   string
		auth    string
		wantErr bool
	}{
		{"fixture token", []string{secret}, "token=" + secret, "", false},
		{"wrong token", []string{secret}, "token=nope", "", true},
		{"token is a prefix", []string{secret}, "token=" + secret[:5], "", true},
		{"missing token and auth", []string{secret}, "", "", true},
		{"other parameter", []string{secret}, "key=" + secret, "", true},
		{"rotation: second secret matches", []string{"old", secret}, "token=" + secret, "", false},
		{"basic auth password", []string{secret}, "", basic("postmark", secret), false},
		{"basic auth wrong password", []string{secret}, "", basic("postmark", "x"), true},
		{"basic auth secret as user only", []string{secret}, "", basic(secret, ""), true},
		{"bearer is not accepted", []string{secret}, "", "Bearer " + secret, true},
		{"wrong token, right basic", []string{secret}, "token=nope", basic("u", secret), false},
		{"malformed query", []string{secret}, "token=%zz", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := NewSource(config.Source{Name: "pm", Kind: "postmark", Brand: "acme", Secrets: tt.secrets}, connectors.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			req := f.ConnectorRequest()
			req.RawQuery = tt.query
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			fixtures.VerifyErr(t, src.Verify(req, f.Now), !tt.wantErr, false, secret)
		})
	}
	if err := (&Source{}).Verify(nil, time.Now()); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatalf("Verify(nil) = %v", err)
	}
}

func TestNewSource(t *testing.T) {
	_, err := NewSource(config.Source{Name: "pm", Brand: "acme"}, connectors.Deps{})
	if err == nil || !strings.HasPrefix(err.Error(), "secrets:") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewSource(config.Source{Name: "pm", Secrets: []string{"x"}}, connectors.Deps{}); err == nil {
		t.Fatal("no brand accepted")
	}
}

func body(fields string) string {
	return `{"RecordType":"SubscriptionChange","MessageStream":"broadcast","ChangedAt":"2025-11-20T11:40:00+01:00","Recipient":"Jules@Example.org",` + fields + `}`
}

func TestParse(t *testing.T) {
	_, src := fixture(t)
	tests := []struct {
		name          string
		body          string
		withdrawal    bool
		undeliverable bool
		skipped       string
		noDedup       bool
	}{
		{name: "manual suppression", body: body(`"SuppressSending":true,"SuppressionReason":"ManualSuppression"`), withdrawal: true},
		{name: "spam complaint", body: body(`"SuppressSending":true,"SuppressionReason":"SpamComplaint","Origin":"Recipient"`), withdrawal: true},
		{name: "hard bounce", body: body(`"SuppressSending":true,"SuppressionReason":"HardBounce"`), undeliverable: true},
		{name: "reactivation", body: body(`"SuppressSending":false,"SuppressionReason":null`), skipped: "subscription change: reactivation is not an express opt-in"},
		{name: "unknown reason", body: body(`"SuppressSending":true,"SuppressionReason":"Other"`), skipped: `subscription change: unknown SuppressionReason "Other"`},
		{name: "no reason", body: body(`"SuppressSending":true`), skipped: "subscription change: suppression without SuppressionReason"},
		{name: "SuppressSending wrong type", body: body(`"SuppressSending":"true","SuppressionReason":"ManualSuppression"`), skipped: "subscription change: SuppressSending is not a boolean", noDedup: true},
		{name: "SuppressSending null", body: body(`"SuppressSending":null,"SuppressionReason":"ManualSuppression"`), skipped: "subscription change: SuppressSending is not a boolean", noDedup: true},
		{name: "no recipient", body: `{"RecordType":"SubscriptionChange","Recipient":"","SuppressSending":true,"SuppressionReason":"SpamComplaint","ChangedAt":"2025-11-20T10:40:00Z"}`, skipped: "subscription change: no Recipient"},
		{name: "bad ChangedAt", body: `{"RecordType":"SubscriptionChange","Recipient":"a@example.com","SuppressSending":true,"SuppressionReason":"SpamComplaint","ChangedAt":"yesterday"}`, skipped: "subscription change: no readable ChangedAt"},
		{name: "other record type", body: `{"RecordType":"Bounce","Email":"a@example.com"}`, skipped: `record type "Bounce": not a subscription change`, noDedup: true},
		{name: "no record type", body: `{}`, skipped: "no RecordType", noDedup: true},
		{name: "wrong types", body: `{"RecordType":1,"Recipient":[],"SuppressSending":{}}`, skipped: "no RecordType", noDedup: true},
		{name: "NUL in recipient", body: body(`"SuppressSending":true,"SuppressionReason":"SpamComplaint","Tag":"a\u0000b"`), withdrawal: true},
		{name: "invalid UTF-8", body: body("\"SuppressSending\":true,\"SuppressionReason\":\"SpamComplaint\",\"Tag\":\"\xff\""), withdrawal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := src.Parse(&connectors.Request{Body: []byte(tt.body)})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.withdrawal {
				if len(b.Signals) != 1 {
					t.Fatalf("signals = %+v, skipped %q", b.Signals, b.Skipped)
				}
				s := b.Signals[0]
				if s.Status != consent.StatusWithdrawn || s.Channel != consent.ChannelEmail || s.Purpose != consent.PurposeMarketing ||
					s.Brand != "acme" || s.Source != "postmark-acme" || s.Subject.Email == "" ||
					!s.OccurredAt.Equal(time.Date(2025, 11, 20, 10, 40, 0, 0, time.UTC)) || s.OccurredAt.Location() != time.UTC {
					t.Fatalf("signal = %+v", s)
				}
				if err := s.Validate(); err != nil {
					t.Fatal(err)
				}
			} else if len(b.Signals) != 0 {
				t.Fatalf("signals = %+v", b.Signals)
			}
			if tt.undeliverable != (len(b.Undeliverable) == 1) {
				t.Fatalf("undeliverable = %v", b.Undeliverable)
			}
			if tt.skipped != "" && (len(b.Skipped) != 1 || b.Skipped[0] != tt.skipped) {
				t.Fatalf("skipped = %q, want %q", b.Skipped, tt.skipped)
			}
			if tt.noDedup != (b.DedupKey == "") {
				t.Fatalf("dedup = %q", b.DedupKey)
			}
		})
	}
}

func TestDedupKeyDistinguishesReactivation(t *testing.T) {
	_, src := fixture(t)
	a, _ := src.Parse(&connectors.Request{Body: []byte(body(`"SuppressSending":true,"SuppressionReason":"ManualSuppression"`))})
	b, _ := src.Parse(&connectors.Request{Body: []byte(body(`"SuppressSending":false`))})
	c, _ := src.Parse(&connectors.Request{Body: []byte(body(`"SuppressionReason":"ManualSuppression","SuppressSending":true,"Extra":1`))})
	if a.DedupKey == b.DedupKey || a.DedupKey != c.DedupKey || a.DedupKey == "" {
		t.Fatalf("keys %q %q %q", a.DedupKey, b.DedupKey, c.DedupKey)
	}
}

func TestParseMalformed(t *testing.T) {
	_, src := fixture(t)
	for _, in := range []string{"", "null", "[]", `[{"RecordType":"SubscriptionChange"}]`, `"x"`, "{", "\xff", "1e999"} {
		if _, err := src.Parse(&connectors.Request{Body: []byte(in)}); !errors.Is(err, connectors.ErrMalformed) {
			t.Fatalf("Parse(%q) = %v, want ErrMalformed", in, err)
		}
	}
	if _, err := src.Parse(nil); !errors.Is(err, connectors.ErrMalformed) {
		t.Fatal(err)
	}
}

func FuzzVerify(f *testing.F) {
	fx, src := fixture(f)
	f.Add(fx.Request.Query, "")
	f.Add("", "Basic "+base64.StdEncoding.EncodeToString([]byte("u:"+secret)))
	f.Add("token=", "Basic ::")
	f.Fuzz(func(t *testing.T, query, auth string) {
		h := http.Header{}
		h.Set("Authorization", auth)
		r := &connectors.Request{RawQuery: query, Header: h}
		err := src.Verify(r, fx.Now)
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("error does not wrap ErrUnauthorized: %v", err)
		}
		if err == nil {
			_, pass, _ := (&http.Request{Header: h}).BasicAuth()
			if r.Query().Get("token") != secret && pass != secret {
				t.Fatalf("accepted without the secret: %q %q", query, auth)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	fx, src := fixture(f)
	f.Add(fx.Body)
	f.Add([]byte(body(`"SuppressSending":true,"SuppressionReason":"HardBounce"`)))
	f.Add([]byte(`{"RecordType":"SubscriptionChange","SuppressSending":false}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		b := fixtures.FuzzParse(t, src, &connectors.Request{Body: in})
		if b == nil {
			return
		}
		if len(b.Signals) > 1 {
			t.Fatalf("one change gave %d signals", len(b.Signals))
		}
		for _, s := range b.Signals {
			if s.Status != consent.StatusWithdrawn {
				t.Fatalf("bad signal %+v", s)
			}
		}
	})
}

// TestWithdrawalWithBadDateIsKept: a suppression whose ChangedAt cannot be
// read is dated at arrival, never dropped.
func TestWithdrawalWithBadDateIsKept(t *testing.T) {
	src, err := NewSource(config.Source{Name: "postmark-acme", Kind: "postmark", Brand: "acme", Secrets: []string{"t"}}, connectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	// A year the ledger cannot hold (the worker would drop the signal) and
	// the Unix epoch (a missing date) are no readable dates either.
	for _, changed := range []string{"yesterday", "0005-01-01T00:00:00Z", "1970-01-01T00:00:00Z"} {
		body := `{"RecordType":"SubscriptionChange","MessageStream":"broadcast","ChangedAt":"` + changed + `","Recipient":"a@example.org","SuppressSending":true,"SuppressionReason":"ManualSuppression"}`
		at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
		b, err := src.Parse(&connectors.Request{Method: "POST", Body: []byte(body), ReceivedAt: at})
		if err != nil || len(b.Signals) != 1 || !b.Signals[0].OccurredAt.Equal(at) || b.Signals[0].Status != consent.StatusWithdrawn {
			t.Fatalf("ChangedAt %q: batch %+v err %v, want one withdrawal dated %s", changed, b, err, at)
		}
	}
}
