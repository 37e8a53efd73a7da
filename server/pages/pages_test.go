package pages

import (
	"errors"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/links"
	"github.com/consentsync/consentsync/service"
)

func TestParseOneClick(t *testing.T) {
	t.Parallel()
	mp := "--b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b--\r\n"
	cases := []struct {
		name, ct, body string
		ok             bool
	}{
		{"gmail", "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click", true},
		{"with charset", "application/x-www-form-urlencoded; charset=utf-8", "List-Unsubscribe=One-Click", true},
		{"other fields too", "application/x-www-form-urlencoded", "a=1&List-Unsubscribe=One-Click&b=2", true},
		{"multipart", "multipart/form-data; boundary=b", mp, true},
		{"multipart without boundary", "multipart/form-data", mp, false},
		{"wrong value", "application/x-www-form-urlencoded", "List-Unsubscribe=one-click", false},
		{"empty body", "application/x-www-form-urlencoded", "", false},
		{"json", "application/json", `{"List-Unsubscribe":"One-Click"}`, false},
		{"no content type", "", "List-Unsubscribe=One-Click", false},
		{"bad escape", "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click%zz", false},
		{"text", "text/plain", "List-Unsubscribe=One-Click", false},
	}
	for _, c := range cases {
		err := ParseOneClick(c.ct, []byte(c.body))
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrNotOneClick) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestParsePreferences(t *testing.T) {
	t.Parallel()
	f, err := ParsePreferences([]byte("csrf=x.y&lang=fr&shown=email:marketing:acme&shown=email:partners:acme&shown=email:marketing:acme" +
		"&on=email:marketing:acme&on=sms:marketing:acme&shown=email:marketing:b%3Ar"))
	if err != nil {
		t.Fatal(err)
	}
	mk := consent.Key{Channel: "email", Brand: "acme", Purpose: "marketing"}
	if f.CSRF != "x.y" || f.Lang != "fr" || f.All || len(f.Shown) != 3 || !f.On[mk] || len(f.On) != 1 ||
		f.Shown[2].Brand != "b:r" {
		t.Fatalf("form = %+v (a ticked key not shown is ignored; a repeated one counted once)", f)
	}
	bad := []string{
		"shown=email:marketing",      // no brand
		"shown=fax:marketing:acme",   // channel
		"shown=email:spam:acme",      // purpose
		"shown=email:marketing:",     // empty brand
		"on=email:marketing:%00acme", // NUL in brand
		"shown=%zz",                  // escape
		"shown=" + strings.Repeat("email:marketing:a&shown=", 201) + "x",
	}
	for _, b := range bad {
		if _, err := ParsePreferences([]byte(b)); !errors.Is(err, ErrBadForm) {
			t.Errorf("%.60q: %v", b, err)
		}
	}
	if _, err := ParsePreferences([]byte(strings.Repeat("a", maxFormBody+1))); !errors.Is(err, ErrBadForm) {
		t.Errorf("oversized body: %v", err)
	}
	if f, _ := ParsePreferences([]byte("all=1")); !f.All {
		t.Error("all not read")
	}
}

func FuzzParsePreferences(f *testing.F) {
	f.Add([]byte("csrf=1.a&shown=email:marketing:acme&on=email:marketing:acme&all=1"))
	f.Add([]byte("shown=sms:partners:b%3Ac"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePreferences(b)
		if err != nil {
			return
		}
		for _, k := range p.Shown {
			back, err := DecodeKey(EncodeKey(k))
			if err != nil || back != k {
				t.Fatalf("key %v does not round-trip: %v %v", k, back, err)
			}
		}
		for k := range p.On {
			found := false
			for _, s := range p.Shown {
				found = found || s == k
			}
			if !found {
				t.Fatalf("on %v not shown", k)
			}
		}
	})
}

func FuzzParseOneClick(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", []byte("List-Unsubscribe=One-Click"))
	f.Add("multipart/form-data; boundary=b", []byte("--b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, ct string, b []byte) {
		if err := ParseOneClick(ct, b); err != nil && !errors.Is(err, ErrNotOneClick) {
			t.Fatalf("error %v does not wrap ErrNotOneClick", err)
		}
	})
}

func TestMask(t *testing.T) {
	t.Parallel()
	for in, want := range map[[2]string]string{
		{"claire@example.com", ""}: "c•••@example.com",
		{"élodie@exemple.fr", ""}:  "é•••@exemple.fr",
		{"@x", ""}:                 "•••",
		{"nolocal", ""}:            "•••",
		{"", "+33612345678"}:       "+33•••••••78",
		{"", "+3"}:                 "•••",
		{"a@b.c", "+33612345678"}:  "a•••@b.c",
	} {
		if got := Mask(in[0], in[1]); got != want {
			t.Errorf("Mask(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}
}

func TestTruncateIPAndClientAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"203.0.113.77":         "203.0.113.0/24",
		"::ffff:203.0.113.77":  "203.0.113.0/24",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1::/48",
		"fe80::1":              "fe80::/48",
	} {
		a := netip.MustParseAddr(in).Unmap()
		if got := TruncateIP(a); got != want {
			t.Errorf("TruncateIP(%s) = %s, want %s", in, got, want)
		}
	}
	if TruncateIP(netip.Addr{}) != "" {
		t.Error("invalid address kept")
	}
	r := httptest.NewRequest("POST", "/u/x", nil)
	r.RemoteAddr = "198.51.100.9:5555"
	r.Header.Set("X-Forwarded-For", "10.0.0.1, 192.0.2.44")
	if a := clientAddr(r, ""); a.String() != "198.51.100.9" {
		t.Errorf("without the header setting: %v", a)
	}
	if a := clientAddr(r, "X-Forwarded-For"); a.String() != "192.0.2.44" {
		t.Errorf("the proxy's last entry: %v", a)
	}
	r.Header.Set("X-Forwarded-For", "garbage")
	if a := clientAddr(r, "X-Forwarded-For"); a.String() != "198.51.100.9" {
		t.Errorf("unreadable header falls back to the connection: %v", a)
	}
	if limitKey(netip.MustParseAddr("2001:db8:1:2:3:4:5:6")) != "2001:db8:1:2::/64" {
		t.Error("IPv6 limit key is the /64")
	}
}

func TestLimiters(t *testing.T) {
	t.Parallel()
	l := newLimiters(3)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 3; i++ {
		if !l.allow("a", now) {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	if l.allow("a", now) {
		t.Fatal("4th request in the same instant allowed")
	}
	if !l.allow("b", now) {
		t.Fatal("another key shares the bucket")
	}
	if !l.allow("a", now.Add(20*time.Second)) {
		t.Fatal("one token per 20 s refills")
	}
}

// TestCatalogue: every message a template or the code names exists in
// every language, and every wording has a version.
func TestCatalogue(t *testing.T) {
	t.Parallel()
	c, err := LoadCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	src, _ := templateFS.ReadFile("templates/pages.html")
	code := string(src)
	for _, f := range []string{"pages.go"} {
		b, err := readFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code += b
	}
	re := regexp.MustCompile(`Get "([a-z_]+)"|\bt\.Get\("([a-z_]+)"|"((?:invalid|slow|bad|busy)_(?:title|body)|(?:unsub|prefs|confirm)_[a-z_]+)"`)
	for _, m := range re.FindAllStringSubmatch(code, -1) {
		key := m[1] + m[2] + m[3]
		if _, ok := c.Messages[key]; !ok {
			t.Errorf("message %q is used but not in the catalogue", key)
		}
	}
	en, fr := c.In("en"), c.In("fr")
	k := consent.Key{Channel: "email", Brand: "acme", Purpose: "marketing"}
	we, wf := en.Wording(k), fr.Wording(k)
	if we.Version != wf.Version || we.Hash == wf.Hash || !strings.Contains(we.Text, "acme") || !strings.HasPrefix(we.Hash, "sha256:") {
		t.Fatalf("wordings: %+v %+v", we, wf)
	}
	if other := en.Wording(consent.Key{Channel: "post", Brand: "acme", Purpose: "cookies"}); other.Version != c.Wordings["other"]["version"] {
		t.Fatalf("fallback wording %+v", other)
	}
}

func TestLang(t *testing.T) {
	t.Parallel()
	c, _ := LoadCatalogue()
	for _, tc := range []struct{ query, accept, form, want string }{
		{"", "", "", "en"},
		{"", "fr-FR,fr;q=0.9,en;q=0.5", "", "fr"},
		{"", "de-DE", "", "en"},
		{"lang=en", "fr", "", "en"},
		{"lang=xx", "fr", "", "fr"},
		{"", "en", "fr", "fr"},
		{"", ";;;q=zz", "", "en"},
	} {
		r := httptest.NewRequest("GET", "/p/x?"+tc.query, nil)
		r.Header.Set("Accept-Language", tc.accept)
		if got := c.Lang(r, tc.form); got != tc.want {
			t.Errorf("%+v: %s", tc, got)
		}
	}
}

func TestSourceRefusesRequestsAndParses(t *testing.T) {
	t.Parallel()
	var s Source
	if err := s.Verify(&connectors.Request{}, time.Now()); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatalf("Verify: %v", err)
	}
	b, err := s.Parse(&connectors.Request{Body: []byte(`{"page":"one_click","at":"2026-12-01T00:00:00Z","signals":[{"subject":{"email":"a@b.fr"},"channel":"email","brand":"acme","purpose":"marketing","status":"withdrawn","occurred_at":"2026-12-01T00:00:00Z","source":"_one_click","evidence":{}}]}`)})
	if err != nil || len(b.Signals) != 1 || b.Signals[0].Status != consent.StatusWithdrawn {
		t.Fatalf("Parse: %v %+v", err, b)
	}
	for _, body := range []string{`{`, `{"extra":1}`, ``} {
		if _, err := s.Parse(&connectors.Request{Body: []byte(body)}); !errors.Is(err, connectors.ErrMalformed) {
			t.Errorf("%q: %v", body, err)
		}
	}
}

func TestConfirmationEvidence(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	yes := true
	page := consent.Evidence{EventID: "0011223344556677", Event: "double_opt_in", IP: "203.0.113.0/24", UserAgent: "UA"}
	wd := Wording{Version: "doi-v1", Hash: "sha256:ab"}
	ev := confirmationEvidence(consent.Evidence{Checkbox: "on", Required: true, PreTicked: &yes, WordingVersion: "form-v3", PartnerList: "p-1"}, page, wd, now)
	if ev.Checkbox != "on" || !ev.Required || ev.PreTicked != nil || ev.WordingVersion != "form-v3" || ev.WordingHash != "" ||
		ev.PartnerList != "p-1" || ev.OptInLevel != "double_opt_in" || ev.ConfirmedAt == nil || !ev.ConfirmedAt.Equal(now) ||
		ev.EventID != page.EventID || ev.IP != page.IP {
		t.Fatalf("evidence %+v", ev)
	}
	if ev := confirmationEvidence(consent.Evidence{}, page, wd, now); ev.WordingVersion != "doi-v1" || ev.WordingHash != "sha256:ab" || ev.Checkbox != "" {
		t.Fatalf("without the request's wording: %+v", ev)
	}
	// What the rules make of it: a required box fails "free" even when
	// confirmed; an optional one passes all six.
	sig := consent.Signal{Status: consent.StatusGranted, OccurredAt: now, Channel: "email", Purpose: "marketing", Evidence: ev}
	sig.Evidence = confirmationEvidence(consent.Evidence{Checkbox: "on", WordingVersion: "form-v3"}, page, wd, now)
	if q := consent.Assess(sig, consent.QualityContext{}); !q.Valid(true) {
		t.Fatalf("an optional box confirmed: %s", q.Detail(true))
	}
	sig.Evidence.Required = true
	if q := consent.Assess(sig, consent.QualityContext{}); q.Valid(false) {
		t.Fatal("a required box confirmed is still not free")
	}
}

func TestSubjectOfChannel(t *testing.T) {
	t.Parallel()
	v := &service.PageView{Phone: "+33612345678"}
	v.Identifier.Email = "a@b.fr"
	if s := subject(v, consent.ChannelEmail); s.Email != "a@b.fr" || s.Phone != "" {
		t.Fatalf("email: %+v", s)
	}
	if s := subject(v, consent.ChannelSMS); s.Email != "a@b.fr" || s.Phone != "+33612345678" {
		t.Fatalf("sms goes to the number, linked with the address: %+v", s)
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	k1 := links.Key{ID: "k1", Secret: []byte(strings.Repeat("1", 32))}
	k2 := links.Key{ID: "k2", Secret: []byte(strings.Repeat("2", 32))}
	old, rotated := links.Signer{Keys: []links.Key{k1}}, links.Signer{Keys: []links.Key{k2, k1}}
	tok := csrfToken(old, "00aa00aa00aa00aa", now)
	for _, tc := range []struct {
		name   string
		sg     links.Signer
		id, v  string
		at     time.Time
		wantOK bool
	}{
		{"fresh", old, "00aa00aa00aa00aa", tok, now, true},
		{"after rotation", rotated, "00aa00aa00aa00aa", tok, now.Add(time.Hour), true},
		{"key removed", links.Signer{Keys: []links.Key{k2}}, "00aa00aa00aa00aa", tok, now, false},
		{"another link", old, "11bb11bb11bb11bb", tok, now, false},
		{"too old", old, "00aa00aa00aa00aa", tok, now.Add(csrfTTL + time.Second), false},
		{"from the future", old, "00aa00aa00aa00aa", tok, now.Add(-2 * time.Minute), false},
		{"empty", old, "00aa00aa00aa00aa", "", now, false},
		{"no dot", old, "00aa00aa00aa00aa", "12345", now, false},
		{"time altered", old, "00aa00aa00aa00aa", "1" + tok, now, false},
		{"not a number", old, "00aa00aa00aa00aa", "x." + strings.SplitN(tok, ".", 2)[1], now, false},
		{"too long", old, "00aa00aa00aa00aa", tok + strings.Repeat("A", 64), now, false},
	} {
		if got := csrfValid(tc.sg, tc.id, tc.v, tc.at); got != tc.wantOK {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
}

// FuzzCSRF: no input panics, and only a token made for this link and key
// verifies.
func FuzzCSRF(f *testing.F) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	sg := links.Signer{Keys: []links.Key{{ID: "k1", Secret: []byte(strings.Repeat("1", 32))}}}
	f.Add(csrfToken(sg, "00aa00aa00aa00aa", now))
	f.Add("1764583200.AAAA")
	f.Fuzz(func(t *testing.T, v string) {
		if csrfValid(sg, "00aa00aa00aa00aa", v, now) && csrfValid(sg, "ffffffffffffffff", v, now) {
			t.Fatalf("%q verifies for two links", v)
		}
	})
}

// FuzzSourceParse: the internal source's parser never panics and refuses
// what it cannot read with ErrMalformed.
func FuzzSourceParse(f *testing.F) {
	f.Add([]byte(`{"page":"one_click","at":"2026-12-01T00:00:00Z","signals":[{"subject":{"email":"a@b.fr"},"channel":"email","brand":"acme","purpose":"marketing","status":"withdrawn","occurred_at":"2026-12-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"signals":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := (Source{}).Parse(&connectors.Request{Body: b}); err != nil && !errors.Is(err, connectors.ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
	})
}
