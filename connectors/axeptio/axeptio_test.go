package axeptio

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

const secret = "ax-url-key-8c31"

func fixture(t testing.TB) (fixtures.Fixture, *Source) {
	t.Helper()
	return fixtures.LoadSource(t, "axeptio-consent", NewSource)
}

func TestFixture(t *testing.T) {
	t.Parallel()
	f, s := fixture(t)
	b := f.Run(t, s)
	if b.DedupKey != "consent:6741f0c2a9b3e1d4c5f60718" {
		t.Errorf("dedup %q", b.DedupKey)
	}
	want := consent.Evidence{EventID: "6741f0c2a9b3e1d4c5f60718", Event: "consent", Field: "vendor:facebook_pixel", Checkbox: "false",
		WordingVersion: "acme-cookies-fr", ConsentString: "Hugo.Moreau@Example.fr"}
	for _, sig := range b.Signals {
		if sig.Evidence.Field == want.Field && sig.Evidence != want {
			t.Errorf("evidence %+v\nwant %+v", sig.Evidence, want)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	f, s := fixture(t)
	basic := func(p string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("consentsync:"+p))}}
	}
	for _, tc := range []struct {
		name, query string
		h           http.Header
		ok          bool
	}{
		{"key", "key=" + secret, nil, true},
		{"basic auth", "", basic(secret), true},
		{"wrong key", "key=" + secret + "x", nil, false},
		{"key prefix", "key=" + secret[:5], nil, false},
		{"empty key", "key=", nil, false},
		{"other parameter", "token=" + secret, nil, false},
		{"wrong basic password", "", basic("nope"), false},
		{"nothing", "", nil, false},
		{"bad query", "key=%zz", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Verify(&connectors.Request{RawQuery: tc.query, Header: tc.h, Body: f.Body}, f.Now)
			if (err == nil) != tc.ok || err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
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
}

func TestParse(t *testing.T) {
	t.Parallel()
	_, s := fixture(t)
	doc := func(token, vendors, extra string) string {
		return `{"_id":"c1","collection":"cookies","token":"` + token + `","preferences":{"config":{"identifier":"v3"},"vendors":{` + vendors + `}},"createdAt":"2025-11-20T10:40:00Z"` + extra + `}`
	}
	for _, tc := range []struct {
		name      string
		body      string
		malformed bool
		want      []string
		skipped   string
	}{
		{"document", doc("a@b.fr", `"google_analytics":true,"x":false`, ``), false, []string{"cookies:analytics granted", "cookies:vendor.x withdrawn"}, ""},
		{"vendors sorted, $$ keys ignored, non-booleans skipped", doc("a@b.fr", `"z":true,"$$completed":true,"a":"yes","m":false`, ``), false,
			[]string{"cookies:vendor.m withdrawn", "cookies:vendor.z granted"}, "not a boolean"},
		{"anonymous token", doc("3f9a-77c1", `"z":true`, ``), false, nil, "anonymous"},
		{"contracts collection", `{"collection":"contracts","token":"a@b.fr","preferences":{}}`, false, nil, "not a cookie consent"},
		{"no vendors", doc("a@b.fr", ``, ``), false, nil, "no vendor choice"},
		{"vendor name of symbols", doc("a@b.fr", `"!!!":true`, ``), false, nil, "cannot name a purpose"},
		{"no date: arrival", `{"token":"a@b.fr","preferences":{"vendors":{"z":false}}}`, false, []string{"cookies:vendor.z withdrawn"}, "dated at arrival"},
		{"relay (option 1)", `{"settings":{"token":"a@b.fr","cookiesVersion":"v2"},"choices":{"$$token":"a@b.fr","$$date":"2025-11-20T10:40:00.000Z","$$cookiesVersion":{"name":"v2"},"$$completed":true,"google_analytics":false,"hotjar":true}}`, false,
			[]string{"cookies:analytics withdrawn", "cookies:vendor.hotjar granted"}, ""},
		{"neither shape", `{"token":"a@b.fr"}`, true, nil, ""},
		{"not json", `{"token":`, true, nil, ""},
		{"array", `[]`, true, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fixtures.Parse(t, s, &connectors.Request{Body: []byte(tc.body), ReceivedAt: time.Date(2025, 11, 21, 0, 0, 0, 0, time.UTC)}, tc.malformed)
			if tc.malformed {
				return
			}
			var got []string
			for _, sig := range b.Signals {
				got = append(got, string(sig.Purpose)+" "+string(sig.Status))
				if err := sig.Validate(); err != nil || sig.Subject.Email != "a@b.fr" || sig.Channel != consent.ChannelEmail {
					t.Errorf("signal %+v: %v", sig, err)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("signals %q, want %q (skipped %q)", got, tc.want, b.Skipped)
			}
			if tc.skipped != "" && !strings.Contains(strings.Join(b.Skipped, "|"), tc.skipped) {
				t.Errorf("skipped %q, want %q", b.Skipped, tc.skipped)
			}
		})
	}
	// email_field: a relay that adds the address.
	s2 := fixtures.Build(t, NewSource, config.Source{Name: "ax", Kind: Kind, Brand: "acme", Secrets: []string{"k"}, Options: &SourceOptions{EmailField: "user.email"}}, connectors.Deps{})
	b := fixtures.Parse(t, s2, &connectors.Request{Body: []byte(`{"user":{"email":"c@d.fr"},"choices":{"$$token":"3f9a","$$date":"2025-11-20T10:40:00Z","v":true}}`)}, false)
	if len(b.Signals) != 1 || b.Signals[0].Subject.Email != "c@d.fr" || b.Signals[0].Evidence.ConsentString != "3f9a" {
		t.Errorf("email_field: %+v %q", b.Signals, b.Skipped)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ extra, want string }{
		{`vendors: {ga: {}}`, "sources[0].vendors.ga.purpose: is required"},
		{`vendors: {ga: {purpose: "cookies:"}}`, "sources[0].vendors.ga.purpose: invalid purpose"},
		{`vendors: {ga: {purpose: marketing, channel: web}}`, "sources[0].vendors.ga.channel: unknown channel"},
	} {
		_, err := config.Parse([]byte("sources:\n  - {name: a, kind: axeptio, brand: acme, secrets: [s], "+tc.extra+"}\n"), func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.extra, err, tc.want)
		}
	}
	if _, err := NewSource(config.Source{Name: "a", Kind: Kind, Brand: "acme"}, connectors.Deps{}); err == nil || !strings.HasPrefix(err.Error(), "secrets:") {
		t.Errorf("no secret: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	fx, s := fixture(f)
	f.Add(fx.Request.Query, "")
	f.Add("key=", "Basic ::")
	f.Fuzz(func(t *testing.T, query, auth string) {
		h := http.Header{"Authorization": {auth}}
		r := &connectors.Request{RawQuery: query, Header: h}
		err := s.Verify(r, fx.Now)
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("error does not wrap ErrUnauthorized: %v", err)
		}
		if err == nil {
			_, pass, _ := (&http.Request{Header: h}).BasicAuth()
			if r.Query().Get("key") != secret && pass != secret {
				t.Fatalf("accepted without the secret: %q %q", query, auth)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	fx, s := fixture(f)
	f.Add(fx.Body)
	f.Add([]byte(`{"settings":{},"choices":{"$$token":"a@b.fr","$$date":1e30,"v":true}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		b := fixtures.FuzzParse(t, s, &connectors.Request{Body: in, ReceivedAt: fx.Now})
		if b == nil {
			return
		}
		for _, sig := range b.Signals {
			if !sig.Purpose.IsCookies() {
				t.Fatalf("a banner choice outside cookies without a mapping: %+v", sig)
			}
		}
	})
}
