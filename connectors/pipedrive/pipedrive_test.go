package pipedrive

import (
	"encoding/base64"
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

const (
	secret  = "pd-hook-pass-4e1f"
	field   = "8f4b2c1d9e0a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"
	authHdr = "Basic Y29uc2VudHN5bmM6cGQtaG9vay1wYXNzLTRlMWY="
)

func fixture(t testing.TB) (fixtures.Fixture, *Source) {
	t.Helper()
	return fixtures.LoadSource(t, "pipedrive-unsubscribe", NewSource)
}

func TestFixture(t *testing.T) {
	t.Parallel()
	f, s := fixture(t)
	b := f.Run(t, s)
	if b.DedupKey != "2c6c9d1e-7f3a-4e5b-8a90-1d2e3f4a5b6c" {
		t.Errorf("dedup %q", b.DedupKey)
	}
	if got := b.Signals[0].Subject.Email; got != "Camille.Faure@Example.fr" {
		t.Errorf("primary address first, as sent: %q", got)
	}
	want := consent.Evidence{EventID: "2c6c9d1e-7f3a-4e5b-8a90-1d2e3f4a5b6c", Event: "change.person", Field: "marketing_status", Checkbox: "unsubscribed"}
	if b.Signals[0].Evidence != want {
		t.Errorf("evidence %+v", b.Signals[0].Evidence)
	}
	if BasicAuth("consentsync", secret) != f.Request.Headers["Authorization"] {
		t.Error("BasicAuth does not reproduce the fixture's header")
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	f, s := fixture(t)
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	for _, tc := range []struct {
		name, auth string
		ok         bool
	}{
		{"as sent", authHdr, true},
		{"no header", "", false},
		{"bearer", "Bearer " + secret, false},
		{"wrong password", basic("consentsync", secret+"x"), false},
		{"password prefix", basic("consentsync", secret[:len(secret)-1]), false},
		{"wrong user", basic("someone", secret), false},
		{"empty password", basic("consentsync", ""), false},
		{"not base64", "Basic %%%", false},
		{"no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte(secret)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.auth != "" {
				h.Set("Authorization", tc.auth)
			}
			err := s.Verify(&connectors.Request{Header: h, Body: f.Body}, f.Now)
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
				t.Fatalf("Verify = %v, want ok %v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Fatal("secret in error")
			}
		})
	}
	if err := s.Verify(nil, f.Now); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Errorf("nil request: %v", err)
	}
	// Without http_auth_user any user name passes; a rotated secret too.
	any := fixtures.Build(t, NewSource, config.Source{Name: "p", Kind: Kind, Brand: "acme", Secrets: []string{"old", secret}}, connectors.Deps{})
	if err := any.Verify(&connectors.Request{Header: http.Header{"Authorization": {basic("whoever", secret)}}}, f.Now); err != nil {
		t.Errorf("any user, second secret: %v", err)
	}
}

func v2(data, previous string) string {
	return `{"data":{` + data + `},"previous":` + previous + `,"meta":{"action":"change","entity":"person","entity_id":"7","id":"d-1","timestamp":"2025-11-20T10:10:00Z","version":"2.0"}}`
}

func TestParse(t *testing.T) {
	t.Parallel()
	_, s := fixture(t)
	one := `"emails":[{"value":"a@b.fr","primary":true}]`
	at := time.Date(2025, 11, 20, 10, 10, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		body      string
		malformed bool
		emails    []string // withdrawn, in order
		at        time.Time
		field     string
		skipped   string
	}{
		{"unsubscribed", v2(one+`,"marketing_status":"unsubscribed"`, `{"marketing_status":"subscribed"}`), false, []string{"a@b.fr"}, at, "marketing_status", ""},
		{"upper case status", v2(one+`,"marketing_status":" UNSUBSCRIBED "`, `{"marketing_status":"archived"}`), false, []string{"a@b.fr"}, at, "marketing_status", ""},
		{"unchanged (not in previous)", v2(one+`,"marketing_status":"unsubscribed","name":"x"`, `{"name":"y"}`), false, nil, at, "", "marketing_status unchanged"},
		{"previous null: read as changed", v2(one+`,"marketing_status":"unsubscribed"`, `null`), false, []string{"a@b.fr"}, at, "marketing_status", ""},
		{"subscribed is no opt-in", v2(one+`,"marketing_status":"subscribed"`, `{"marketing_status":"unsubscribed"}`), false, nil, at, "", "not an express opt-in"},
		{"archived is no withdrawal", v2(one+`,"marketing_status":"archived"`, `{"marketing_status":"subscribed"}`), false, nil, at, "", "archived"},
		{"no_consent is no withdrawal", v2(one+`,"marketing_status":"no_consent"`, `{"marketing_status":"subscribed"}`), false, nil, at, "", "absence of consent"},
		{"unknown status", v2(one+`,"marketing_status":"gone"`, `{"marketing_status":"subscribed"}`), false, nil, at, "", "unknown"},
		{"custom enum field set", v2(one+`,"custom_fields":{"`+field+`":{"type":"enum","id":41}}`, `{"custom_fields":{"`+field+`":null}}`), false, []string{"a@b.fr"}, at, field, ""},
		{"custom enum other option", v2(one+`,"custom_fields":{"`+field+`":{"type":"enum","id":40}}`, `{"custom_fields":{"`+field+`":{"type":"enum","id":41}}}`), false, nil, at, "", "not set to an opt-out value"},
		{"custom field unchanged", v2(one+`,"custom_fields":{"`+field+`":{"type":"enum","id":41}}`, `{"name":"x"}`), false, nil, at, "", "opt-out field unchanged"},
		{"several addresses, duplicates, junk", v2(`"emails":[{"value":"w@b.fr","primary":false},{"value":"P@B.fr","primary":true},{"value":"p@b.fr"},{"value":""},{"value":"no-at"},42,"s@b.fr"],"marketing_status":"unsubscribed"`, `{"marketing_status":"subscribed"}`), false,
			[]string{"P@B.fr", "w@b.fr", "s@b.fr"}, at, "marketing_status", ""},
		{"no address", v2(`"emails":[],"marketing_status":"unsubscribed"`, `{"marketing_status":"subscribed"}`), false, nil, at, "", "without an email address"},
		{"bad timestamp: update_time", `{"data":{` + one + `,"marketing_status":"unsubscribed","update_time":"2025-11-20 09:00:00"},"previous":null,"meta":{"action":"change","entity":"person","timestamp":"soon"}}`, false,
			[]string{"a@b.fr"}, time.Date(2025, 11, 20, 9, 0, 0, 0, time.UTC), "marketing_status", ""},
		{"no time at all: arrival", `{"data":{` + one + `,"marketing_status":"unsubscribed"},"meta":{"action":"create","entity":"person"}}`, false,
			[]string{"a@b.fr"}, time.Date(2025, 11, 21, 0, 0, 0, 0, time.UTC), "marketing_status", "dated at arrival"},
		{"deal event", `{"data":{"id":1},"meta":{"action":"change","entity":"deal"}}`, false, nil, at, "", "not a person event"},
		{"delete person", `{"data":null,"previous":{},"meta":{"action":"delete","entity":"person"}}`, false, nil, at, "", "no consent meaning"},
		{"v1 updated.person", `{"v":1,"event":"updated.person","meta":{"v":1,"action":"updated","object":"person","id":7,"timestamp":1763633400,"webhook_id":"55"},"current":{"email":[{"label":"work","value":"v1@b.fr","primary":true}],"marketing_status":"unsubscribed"},"previous":{"email":[{"value":"v1@b.fr","primary":true}],"marketing_status":"subscribed"}}`, false,
			[]string{"v1@b.fr"}, time.Date(2025, 11, 20, 10, 10, 0, 0, time.UTC), "marketing_status", ""},
		{"v1 custom field as raw value", `{"event":"updated.person","meta":{"action":"updated","object":"person","id":7,"timestamp":1763633400},"current":{"email":[{"value":"v1@b.fr"}],"marketing_status":"subscribed","` + field + `":"41"},"previous":{"marketing_status":"subscribed","` + field + `":null}}`, false,
			[]string{"v1@b.fr"}, time.Date(2025, 11, 20, 10, 10, 0, 0, time.UTC), field, ""},
		{"not json", `{"data":`, true, nil, at, "", ""},
		{"array", `[]`, true, nil, at, "", ""},
		{"no meta", `{"data":{}}`, true, nil, at, "", ""},
		{"meta not an object", `{"meta":"x"}`, true, nil, at, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &connectors.Request{Body: []byte(tc.body), ReceivedAt: time.Date(2025, 11, 21, 0, 0, 0, 0, time.UTC)}
			b := fixtures.Parse(t, s, r, tc.malformed)
			if tc.malformed {
				return
			}
			var got []string
			for _, sig := range b.Signals {
				got = append(got, sig.Subject.Email)
				if sig.Status != consent.StatusWithdrawn || sig.Purpose != consent.PurposeMarketing || sig.Channel != consent.ChannelEmail ||
					sig.Brand != "acme" || sig.Source != "pipedrive-acme" || !sig.OccurredAt.Equal(tc.at) || sig.Evidence.Field != tc.field {
					t.Errorf("signal %+v", sig)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.emails, ",") {
				t.Errorf("withdrawn %q, want %q (skipped %q)", got, tc.emails, b.Skipped)
			}
			if tc.skipped != "" && !strings.Contains(strings.Join(b.Skipped, "|"), tc.skipped) {
				t.Errorf("skipped %q, want %q", b.Skipped, tc.skipped)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, want string }{
		{"marketing_status: false\n", "sources[0].opt_out_field: is required"},
		{"opt_out_values: [\"\"]\n", "sources[0].opt_out_values[0]: is empty"},
	} {
		_, err := config.Parse([]byte("sources:\n  - name: p\n    kind: pipedrive\n    brand: acme\n    secrets: [s]\n    "+strings.ReplaceAll(tc.yaml, "\n", "\n    ")+"\n"), func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := NewSource(config.Source{Name: "p", Kind: Kind, Brand: "acme"}, connectors.Deps{}); err == nil || !strings.Contains(err.Error(), "secrets") {
		t.Errorf("no secret: %v", err)
	}
	// marketing_status off: only the custom field is read.
	f := false
	s := fixtures.Build(t, NewSource, config.Source{Name: "p", Kind: Kind, Brand: "acme", Secrets: []string{"s"},
		Options: &SourceOptions{MarketingStatus: &f, OptOutField: field, OptOutValues: []string{"41"}}}, connectors.Deps{})
	b := fixtures.Parse(t, s, &connectors.Request{Body: []byte(v2(`"emails":[{"value":"a@b.fr"}],"marketing_status":"unsubscribed"`, `{"marketing_status":"subscribed"}`))}, false)
	if len(b.Signals) != 0 {
		t.Errorf("marketing_status read although off: %+v", b.Signals)
	}
}

func FuzzVerify(f *testing.F) {
	fx, s := fixture(f)
	f.Add(authHdr)
	f.Add("Basic ::")
	f.Add("Basic " + base64.StdEncoding.EncodeToString([]byte("consentsync:"+secret+"\x00")))
	f.Fuzz(func(t *testing.T, auth string) {
		h := http.Header{"Authorization": {auth}}
		err := s.Verify(&connectors.Request{Header: h, Body: fx.Body}, fx.Now)
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("error does not wrap ErrUnauthorized: %v", err)
		}
		if err == nil {
			u, p, _ := (&http.Request{Header: h}).BasicAuth()
			if u != "consentsync" || p != secret {
				t.Fatalf("accepted %q", auth)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	fx, s := fixture(f)
	f.Add(fx.Body)
	f.Add([]byte(v2(`"emails":[{"value":"a@b.fr"}],"custom_fields":{"`+field+`":{"ids":[41]}}`, `{"custom_fields":{}}`)))
	f.Add([]byte(`{"event":"updated.person","meta":{"action":"updated","object":"person","timestamp":1e300},"current":{"email":"x@y.z","marketing_status":"unsubscribed"}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		b := fixtures.FuzzParse(t, s, &connectors.Request{Body: in, ReceivedAt: fx.Now})
		if b == nil {
			return
		}
		for _, sig := range b.Signals {
			if sig.Status != consent.StatusWithdrawn || sig.Purpose != consent.PurposeMarketing {
				t.Fatalf("only withdrawals of marketing: %+v", sig)
			}
		}
	})
}

func TestFixtureV1(t *testing.T) {
	t.Parallel()
	f, s := fixtures.LoadSource(t, "pipedrive-v1-optout", NewSource)
	b := f.Run(t, s)
	if b.DedupKey == "" || b.Signals[0].Evidence.Event != "updated.person" || b.Signals[0].Evidence.Field != field || b.Signals[0].Evidence.Checkbox != "41" {
		t.Errorf("dedup %q evidence %+v", b.DedupKey, b.Signals[0].Evidence)
	}
	if len(b.Skipped) != 0 {
		t.Errorf("skipped %q", b.Skipped)
	}
}
