package links

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/consent"
)

var (
	t0     = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	keyNew = Key{ID: "k2", Secret: []byte("0123456789abcdef0123456789abcdef-new")}
	keyOld = Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef-old")}
)

func issue(t *testing.T, s Signer, c Claims) string {
	t.Helper()
	tok, _, err := s.Issue(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRoundTripAndRotation(t *testing.T) {
	t.Parallel()
	old := Signer{Keys: []Key{keyOld}}
	rotated := Signer{Keys: []Key{keyNew, keyOld}}
	c := Claims{Purpose: Unsubscribe, SubjectID: 42, Brand: "acme", ExpiresAt: t0.Add(time.Hour)}
	tokOld := issue(t, old, c)
	got, err := rotated.Verify(tokOld, Unsubscribe, t0)
	if err != nil {
		t.Fatalf("a token of the old key must verify after rotation: %v", err)
	}
	if got.SubjectID != 42 || got.Brand != "acme" || got.KeyID != "k1" || got.Channel != consent.ChannelEmail ||
		got.ConsentPurpose != consent.PurposeMarketing || len(got.ID) != 16 || !got.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("claims = %+v", got)
	}
	tokNew, nc, err := rotated.Issue(Claims{Purpose: Preferences, SubjectID: 1 << 40, Brand: "bêta", ExpiresAt: t0.Add(time.Hour),
		ConsentPurpose: consent.PurposePartners, Channel: consent.ChannelSMS})
	if err != nil {
		t.Fatal(err)
	}
	if nc.KeyID != "k2" || !strings.HasPrefix(tokNew, "k2.") {
		t.Fatalf("the first key signs: %s", tokNew)
	}
	if _, err := old.Verify(tokNew, Preferences, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a key removed no longer verifies: %v", err)
	}
	got, err = rotated.Verify(tokNew, Preferences, t0)
	if err != nil || got.Brand != "bêta" || got.SubjectID != 1<<40 || got.Channel != consent.ChannelSMS || got.ConsentPurpose != consent.PurposePartners {
		t.Fatalf("claims = %+v, %v", got, err)
	}
	// No personal data in the token: the payload decodes to ids, codes
	// and the brand only.
	for _, s := range []string{"@", "example"} {
		if strings.Contains(tokNew, s) {
			t.Fatalf("token %q holds %q", tokNew, s)
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	s := Signer{Keys: []Key{keyNew}}
	good := issue(t, s, Claims{Purpose: Unsubscribe, SubjectID: 7, Brand: "acme", ExpiresAt: t0.Add(time.Minute)})
	kid, rest, _ := strings.Cut(good, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	flip := func(b []byte, i int) string {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(c)
	}
	otherKey := issue(t, Signer{Keys: []Key{{ID: "k2", Secret: []byte("another-secret-another-secret-xx")}}},
		Claims{Purpose: Unsubscribe, SubjectID: 7, Brand: "acme", ExpiresAt: t0.Add(time.Minute)})
	cases := []struct {
		name string
		tok  string
		want Purpose
		now  time.Time
		err  error
	}{
		{"empty", "", Unsubscribe, t0, ErrInvalid},
		{"no dots", "abc", Unsubscribe, t0, ErrInvalid},
		{"one dot", "k2.abc", Unsubscribe, t0, ErrInvalid},
		{"unknown key id", "k9." + payload + "." + sig, Unsubscribe, t0, ErrInvalid},
		{"empty key id", "." + payload + "." + sig, Unsubscribe, t0, ErrInvalid},
		{"payload bit flipped", kid + "." + flip(raw, 5) + "." + sig, Unsubscribe, t0, ErrInvalid},
		{"mac truncated", kid + "." + payload + "." + sig[:10], Unsubscribe, t0, ErrInvalid},
		{"mac of another secret, same id", otherKey, Unsubscribe, t0, ErrInvalid},
		{"padding added", good + "==", Unsubscribe, t0, ErrInvalid},
		{"extra segment", good + ".x", Unsubscribe, t0, ErrInvalid},
		{"another purpose", good, Preferences, t0, ErrInvalid},
		{"another purpose (confirm)", good, Confirm, t0, ErrInvalid},
		{"expired at the instant", good, Unsubscribe, t0.Add(time.Minute), ErrExpired},
		{"expired later", good, Unsubscribe, t0.Add(24 * time.Hour), ErrExpired},
		{"too long", good + strings.Repeat("A", MaxLen), Unsubscribe, t0, ErrInvalid},
		{"NUL", "k2.\x00.\x00", Unsubscribe, t0, ErrInvalid},
		{"non-ascii", "k2.é.é", Unsubscribe, t0, ErrInvalid},
		// Go's base64 decoders skip CR and LF: another spelling of a
		// valid token must not verify.
		{"LF inside the mac", kid + "." + payload + "." + sig[:5] + "\n" + sig[5:], Unsubscribe, t0, ErrInvalid},
		{"CRLF inside the payload", kid + "." + payload[:4] + "\r\n" + payload[4:] + "." + sig, Unsubscribe, t0, ErrInvalid},
		{"trailing LF", good + "\n", Unsubscribe, t0, ErrInvalid},
		{"space", good[:8] + " " + good[8:], Unsubscribe, t0, ErrInvalid},
		{"valid", good, Unsubscribe, t0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Verify(tc.tok, tc.want, tc.now)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.err)
			}
		})
	}
	if _, err := (Signer{}).Verify(good, Unsubscribe, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no keys: %v", err)
	}
}

func TestIssueRefuses(t *testing.T) {
	t.Parallel()
	s := Signer{Keys: []Key{keyNew}}
	exp := t0.Add(time.Hour)
	cases := []struct {
		name string
		c    Claims
	}{
		{"unknown purpose", Claims{Purpose: 'x', SubjectID: 1, Brand: "a", ExpiresAt: exp}},
		{"zero subject", Claims{Purpose: Unsubscribe, Brand: "a", ExpiresAt: exp}},
		{"negative subject", Claims{Purpose: Unsubscribe, SubjectID: -1, Brand: "a", ExpiresAt: exp}},
		{"no brand", Claims{Purpose: Unsubscribe, SubjectID: 1, ExpiresAt: exp}},
		{"long brand", Claims{Purpose: Unsubscribe, SubjectID: 1, Brand: strings.Repeat("b", 65), ExpiresAt: exp}},
		{"bad utf-8 brand", Claims{Purpose: Unsubscribe, SubjectID: 1, Brand: "\xff", ExpiresAt: exp}},
		{"no expiry", Claims{Purpose: Unsubscribe, SubjectID: 1, Brand: "a"}},
		{"bad channel", Claims{Purpose: Unsubscribe, SubjectID: 1, Brand: "a", ExpiresAt: exp, Channel: "fax"}},
		{"bad id", Claims{Purpose: Unsubscribe, SubjectID: 1, Brand: "a", ExpiresAt: exp, ID: "xyz"}},
	}
	for _, tc := range cases {
		if _, _, err := s.Issue(tc.c); err == nil {
			t.Errorf("%s: Issue accepted %+v", tc.name, tc.c)
		}
	}
	if _, _, err := (Signer{}).Issue(Claims{Purpose: Unsubscribe, SubjectID: 1, Brand: "a", ExpiresAt: exp}); !errors.Is(err, ErrNoKey) {
		t.Fatalf("no key: %v", err)
	}
}

// FuzzVerify: no input panics; whatever verifies re-issues to the same
// token (the encoding is canonical, so a token cannot be altered and
// still verify).
func FuzzVerify(f *testing.F) {
	s := Signer{Keys: []Key{keyNew, keyOld}}
	for _, p := range []Purpose{Unsubscribe, Preferences, Confirm} {
		tok, _, _ := s.Issue(Claims{Purpose: p, SubjectID: 99, Brand: "acme", ExpiresAt: t0.Add(time.Hour)})
		f.Add(tok)
	}
	f.Add("k1..")
	f.Add("k2.AQ.AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		for _, p := range []Purpose{Unsubscribe, Preferences, Confirm} {
			c, err := s.Verify(tok, p, t0)
			if err != nil {
				continue
			}
			again, _, err := Signer{Keys: keysFirst(s.Keys, c.KeyID)}.Issue(c)
			if err != nil || again != tok {
				t.Fatalf("verified token %q re-issues as %q (%v)", tok, again, err)
			}
		}
	})
}

func keysFirst(ks []Key, id string) []Key {
	for _, k := range ks {
		if k.ID == id {
			return []Key{k}
		}
	}
	return nil
}
