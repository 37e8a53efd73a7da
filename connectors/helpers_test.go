package connectors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/consent"
)

func TestCheckSource(t *testing.T) {
	tests := []struct {
		cfg  config.Source
		what string
		want string // "" = no error
	}{
		{config.Source{Brand: "acme", Secrets: []string{"s"}}, "", ""},
		{config.Source{Brand: "acme"}, "", "secrets: at least one secret is required"},
		{config.Source{Brand: "acme"}, "the signing key", "secrets: at least one secret is required (the signing key)"},
		{config.Source{Brand: "acme", Secrets: []string{"s", ""}}, "", "secrets[1]: is empty"},
		{config.Source{Secrets: []string{"s"}}, "", "brand: is required"},
	}
	for _, tt := range tests {
		err := CheckSource(tt.cfg, tt.what)
		if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
			t.Errorf("CheckSource(%+v, %q) = %v, want %q", tt.cfg, tt.what, err, tt.want)
		}
	}
	if err := CheckSecrets([]string{"s"}, ""); err != nil {
		t.Error(err)
	}
}

func TestJSONText(t *testing.T) {
	for _, tt := range []struct {
		raw, str, scalar string
	}{
		{`"a\u0000b"`, "a\x00b", "a\x00b"},
		{`""`, "", ""},
		{`12`, "", "12"},
		{`-1.5e3`, "", "-1.5e3"},
		{`null`, "", ""},
		{`true`, "", ""},
		{`{"a":1}`, "", ""},
		{`["x"]`, "", ""},
		{``, "", ""},
	} {
		raw := json.RawMessage(tt.raw)
		if got := JSONString(raw); got != tt.str {
			t.Errorf("JSONString(%s) = %q, want %q", tt.raw, got, tt.str)
		}
		if got := JSONScalar(raw); got != tt.scalar {
			t.Errorf("JSONScalar(%s) = %q, want %q", tt.raw, got, tt.scalar)
		}
	}
	if _, err := JSONObject(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("JSONObject(nil) = %v", err)
	}
	for _, body := range []string{"", "null", "[]", `"x"`, "{"} {
		if _, err := JSONObject(&Request{Body: []byte(body)}); !errors.Is(err, ErrMalformed) {
			t.Errorf("JSONObject(%q) = %v", body, err)
		}
	}
	if obj, err := JSONObject(&Request{Body: []byte(`{"a":"b"}`)}); err != nil || JSONString(obj["a"]) != "b" {
		t.Errorf("JSONObject = %v, %v", obj, err)
	}
}

func TestParseRFC3339(t *testing.T) {
	want := time.Date(2025, 11, 20, 10, 40, 0, 123456700, time.UTC)
	for _, v := range []string{"2025-11-20T10:40:00.1234567Z", " 2025-11-20T11:40:00.1234567+01:00 "} {
		got, ok := ParseRFC3339(v)
		if !ok || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseRFC3339(%q) = %v, %v", v, got, ok)
		}
	}
	for _, v := range []string{"", "yesterday", "2025-11-20 10:40:00", "0001-01-01T00:00:00Z"} {
		if got, ok := ParseRFC3339(v); ok {
			t.Errorf("ParseRFC3339(%q) = %v", v, got)
		}
	}
	// Bounds are InYearRange's business.
	old, ok := ParseRFC3339("1900-01-01T00:00:00Z")
	if !ok || InYearRange(old) {
		t.Errorf("1900: %v %v", ok, InYearRange(old))
	}
	late, ok := ParseRFC3339("9999-12-31T23:00:00-05:00")
	if !ok || InYearRange(late) {
		t.Errorf("year 10000 UTC: %v %v", ok, InYearRange(late))
	}
	if !InYearRange(want) || !InYearRange(time.Unix(1, 0)) {
		t.Error("in range refused")
	}
	// The epoch itself stands for "no date" (as the number 0 does).
	if epoch, ok := ParseRFC3339("1970-01-01T01:00:00+01:00"); !ok || InYearRange(epoch) {
		t.Errorf("the Unix epoch: %v %v", ok, InYearRange(epoch))
	}
}

func TestClip(t *testing.T) {
	if got := Clip("abcdef", 3); got != "abc..." {
		t.Errorf("Clip = %q", got)
	}
	if got := Clip("abc", 3); got != "abc" {
		t.Errorf("Clip = %q", got)
	}
	if got := ClipUTF8("aé\xffb", 2); got != "a" {
		t.Errorf("ClipUTF8 = %q", got)
	}
	if got := ClipUTF8("aé\xffb", 3); got != "aé" {
		t.Errorf("ClipUTF8 = %q", got)
	}
	if got := ClipUTF8("aé\xffb", 10); got != "aéb" {
		t.Errorf("ClipUTF8 = %q", got)
	}
	if got := Quote("ab\xffcd", 3); got != `"ab?"` {
		t.Errorf("Quote = %s", got)
	}
	if got := Quote(strings.Repeat("x", 40), 32); got != `"`+strings.Repeat("x", 32)+`"` {
		t.Errorf("Quote = %s", got)
	}
}

func TestHashes(t *testing.T) {
	if HashKeys(nil) != "" {
		t.Error("HashKeys(nil) is not empty")
	}
	keys := []string{"b", "a"}
	sum := sha256.Sum256([]byte("a\nb"))
	if got := HashKeys(keys); got != hex.EncodeToString(sum[:]) || keys[0] != "b" {
		t.Errorf("HashKeys = %q, keys %q", got, keys)
	}
	sum = sha256.Sum256([]byte("2:ab1:c"))
	if got := HashParts("ab", "c"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("HashParts = %q", got)
	}
	if HashParts("ab", "c") == HashParts("a", "bc") {
		t.Error("ambiguous concatenation")
	}
}

func TestTolerance(t *testing.T) {
	if Tolerance(0) != DefaultTolerance || Tolerance(-time.Second) != DefaultTolerance || Tolerance(time.Minute) != time.Minute {
		t.Error("Tolerance")
	}
}

func TestIsHTTPURL(t *testing.T) {
	for u, want := range map[string]bool{
		"https://api.example.com": true, "http://127.0.0.1:8080/x": true,
		"api.example.com": false, "ftp://x": false, "https://": false, "": false, "%zz": false,
	} {
		if IsHTTPURL(u) != want {
			t.Errorf("IsHTTPURL(%q) = %v", u, !want)
		}
	}
}

func sup(id int64, email string, ch consent.Channel) Suppression {
	return Suppression{ID: id, Email: email, Channel: ch}
}

func TestEmailOnly(t *testing.T) {
	batch := []Suppression{
		sup(1, "a@example.com", consent.ChannelEmail),
		sup(2, "  ", consent.ChannelEmail),
		sup(3, "b@example.com", consent.ChannelSMS),
		sup(4, "bad", ""),
		sup(5, "c@example.com", ""),
	}
	refuse := func(s Suppression) error {
		if !strings.Contains(s.Email, "@") {
			return Permanent("v: not an address")
		}
		return nil
	}
	send, refused := EmailOnly("v", batch, refuse)
	if len(send) != 2 || send[0].ID != 1 || send[1].ID != 5 {
		t.Fatalf("send %+v", send)
	}
	want := []string{
		"permanent failure: v: suppression has no email address",
		`permanent failure: v: channel "sms" is not supported (email only)`,
		"permanent failure: v: not an address",
	}
	if len(refused) != len(want) {
		t.Fatalf("refused %+v", refused)
	}
	for i, r := range refused {
		if !errors.Is(r.Err, ErrPermanent) || r.Err.Error() != want[i] || r.ID != []int64{2, 3, 4}[i] {
			t.Errorf("refused[%d] = %+v, want %q", i, r, want[i])
		}
	}
	if send, refused := EmailOnly("v", batch[3:4], nil); len(send) != 1 || len(refused) != 0 {
		t.Errorf("without refuse: %+v %+v", send, refused)
	}
}

func TestPushByAddress(t *testing.T) {
	var batch []Suppression
	for i, e := range []string{"a@x", "A@x ", "b@x", "c@x", "b@X", "d@x"} {
		batch = append(batch, sup(int64(i+1), e, consent.ChannelEmail))
	}
	var calls [][]string
	push := func(_ context.Context, part []Suppression) ([]Result, error) {
		addrs, ids := GroupByAddress(part)
		calls = append(calls, addrs)
		var out []Result
		for _, a := range addrs {
			for _, id := range ids[AddrKey(a)] {
				out = append(out, Result{ID: id})
			}
		}
		return out, nil
	}
	res, err := PushByAddress(context.Background(), batch, 2, push)
	if err != nil || len(res) != len(batch) {
		t.Fatalf("%v, %d results", err, len(res))
	}
	// At most 2 distinct addresses a call, in batch order; a repeated
	// address rides with its first occurrence's call when it falls in it.
	if got := fmt.Sprint(calls); got != "[[a@x b@x] [c@x b@X] [d@x]]" {
		t.Fatalf("calls %s", got)
	}
	boom := errors.New("boom")
	if res, err := PushByAddress(context.Background(), batch, 2, func(context.Context, []Suppression) ([]Result, error) { return nil, boom }); err != boom || res != nil {
		t.Fatalf("%v %v", res, err)
	}
}
