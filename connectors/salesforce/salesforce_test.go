package salesforce

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const org = "00D5e000000AbCdEAK"

func fixture(t testing.TB) (fixtures.Fixture, *Source) {
	t.Helper()
	return fixtures.LoadSource(t, "salesforce-optout", NewSource)
}

func newSource(t testing.TB, cfg config.Source) *Source {
	t.Helper()
	cfg.Name, cfg.Kind, cfg.Brand = "salesforce-acme", "salesforce", "acme"
	return fixtures.Build(t, NewSource, cfg, connectors.Deps{})
}

// envelope wraps notifications the way Salesforce sends them.
func envelope(orgID string, notifications ...string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>` + orgID + `</OrganizationId>
   <ActionId>04k5e000000XyZaAAK</ActionId>` + strings.Join(notifications, "") + `
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>`
}

func notif(id, typ, fields string) string {
	return `<Notification><Id>` + id + `</Id><sObject xsi:type="sf:` + typ + `" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">` + fields + `</sObject></Notification>`
}

func TestFixture(t *testing.T) {
	f, src := fixture(t)
	b := f.Run(t, src)
	ev := b.Signals[0].Evidence
	if ev.EventID != "04l5e00000AbCdEAAZ" || ev.Field != "Contact.HasOptedOutOfEmail" {
		t.Fatalf("evidence = %+v", ev)
	}
	sum := sha256.Sum256([]byte("04l5e00000AbCdEAAZ"))
	if b.DedupKey != hex.EncodeToString(sum[:]) {
		t.Fatalf("dedup = %q", b.DedupKey)
	}
	for _, dup := range []bool{false, true} {
		w := httptest.NewRecorder()
		src.Respond(w, "42", dup)
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/xml") ||
			!strings.Contains(w.Body.String(), f.Expect.ResponseContains) || w.Body.String() != AckResponse {
			t.Fatalf("Respond(dup=%v) = %d %q %q", dup, w.Code, w.Header().Get("Content-Type"), w.Body.String())
		}
	}
}

func TestVerify(t *testing.T) {
	f, _ := fixture(t)
	body := string(f.Body)
	tamperedOrg := strings.Replace(body, "<OrganizationId>00D5e000000AbCdEAK<", "<OrganizationId>00D5e000000AbCdEAL<", 1)
	tests := []struct {
		name      string
		cfg       config.Source
		body      string
		wantErr   bool
		malformed bool
	}{
		{"fixture", config.Source{Secrets: []string{org}}, body, false, false},
		{"tampered org id byte", config.Source{Secrets: []string{org}}, tamperedOrg, true, false},
		{"wrong org", config.Source{Secrets: []string{"00D000000000001AAA"}}, body, true, false},
		{"rotation: second id matches", config.Source{Secrets: []string{"00D000000000001AAA", org}}, body, false, false},
		{"organization_id wins over secrets", config.Source{Options: &SourceOptions{OrganizationID: "00D000000000001AAA"}, Secrets: []string{org}}, body, true, false},
		{"organization_id", config.Source{Options: &SourceOptions{OrganizationID: org}}, body, false, false},
		{"15-char configured id", config.Source{Options: &SourceOptions{OrganizationID: org[:15]}}, body, false, false},
		{"15-char id sent", config.Source{Secrets: []string{org}}, envelope(org[:15]), false, false},
		{"case differs", config.Source{Secrets: []string{strings.ToLower(org)}}, body, true, false},
		{"missing org id", config.Source{Secrets: []string{org}}, envelope(""), true, false},
		{"empty body", config.Source{Secrets: []string{org}}, "", true, true},
		{"not XML", config.Source{Secrets: []string{org}}, `{"OrganizationId":"` + org + `"}`, true, true},
		{"latin-1 declared", config.Source{Secrets: []string{org}}, strings.Replace(body, `encoding="UTF-8"`, `encoding="ISO-8859-1"`, 1), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newSource(t, tt.cfg)
			err := src.Verify(&connectors.Request{Body: []byte(tt.body)}, f.Now)
			fixtures.VerifyErr(t, err, !tt.wantErr, false, append(tt.cfg.Secrets, config.OptionsOf[SourceOptions](tt.cfg.Options).OrganizationID)...)
			if err != nil && tt.malformed != errors.Is(err, connectors.ErrMalformed) {
				t.Fatalf("err = %v, malformed want %v", err, tt.malformed)
			}
		})
	}
	if err := (&Source{}).Verify(nil, time.Now()); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatal(err)
	}
}

func TestNewSource(t *testing.T) {
	_, err := NewSource(config.Source{Name: "sf", Brand: "acme"}, connectors.Deps{})
	if err == nil || !strings.HasPrefix(err.Error(), "organization_id:") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewSource(config.Source{Name: "sf", Brand: "acme", Secrets: []string{""}}, connectors.Deps{}); err == nil {
		t.Fatal("empty secret accepted")
	}
	if _, err := NewSource(config.Source{Name: "sf", Options: &SourceOptions{OrganizationID: org}}, connectors.Deps{}); err == nil {
		t.Fatal("no brand accepted")
	}
}

func TestParse(t *testing.T) {
	src := newSource(t, config.Source{Secrets: []string{org}})
	date := `<sf:LastModifiedDate>2025-11-20T11:50:00.000+01:00</sf:LastModifiedDate>`
	tests := []struct {
		name    string
		body    string
		emails  []string // withdrawals, in order
		skipped []string
		dedupOf []string
	}{
		{
			name: "contact, lead, opted-in and unreadable",
			body: envelope(org,
				notif("N3", "Contact", `<sf:Email>a@example.com</sf:Email><sf:HasOptedOutOfEmail>true</sf:HasOptedOutOfEmail>`+date),
				notif("N1", "Lead", `<sf:Email>Lead@Example.com</sf:Email><sf:HasOptedOutOfEmail>1</sf:HasOptedOutOfEmail><sf:SystemModstamp>2025-11-20T10:50:00Z</sf:SystemModstamp>`),
				notif("N2", "Contact", `<sf:Email>c@example.com</sf:Email><sf:HasOptedOutOfEmail>false</sf:HasOptedOutOfEmail>`+date),
				notif("N4", "Contact", `<sf:Email>d@example.com</sf:Email><sf:HasOptedOutOfEmail>maybe</sf:HasOptedOutOfEmail>`+date),
			),
			emails: []string{"a@example.com", "Lead@Example.com"},
			skipped: []string{
				"notification 3: HasOptedOutOfEmail false is not an express opt-in",
				"notification 4: HasOptedOutOfEmail is not a boolean",
			},
			dedupOf: []string{"N1", "N2", "N3", "N4"},
		},
		{
			name: "missing fields",
			body: envelope(org,
				notif("N1", "Contact", `<sf:Email xsi:nil="true"/><sf:HasOptedOutOfEmail>true</sf:HasOptedOutOfEmail>`+date),
				notif("N2", "Contact", `<sf:Email>b@example.com</sf:Email>`+date),
				notif("N3", "Contact", `<sf:Email>b@example.com</sf:Email><sf:HasOptedOutOfEmail>true</sf:HasOptedOutOfEmail>`),
				`<Notification><Id>N4</Id></Notification>`,
			),
			skipped: []string{
				"notification 1: no Email",
				"notification 2: no HasOptedOutOfEmail field",
				"notification 3: no readable LastModifiedDate",
				"notification 4: no sObject",
			},
			dedupOf: []string{"N1", "N2", "N3", "N4"},
		},
		{
			name: "no namespaces at all, prefixes undeclared",
			body: `<Envelope><Body><notifications><OrganizationId>` + org + `</OrganizationId>` +
				`<Notification><Id>N9</Id><sObject><sf:Email>x@example.com</sf:Email><sf:HasOptedOutOfEmail>TRUE</sf:HasOptedOutOfEmail>` + date + `</sObject></Notification>` +
				`</notifications></Body></Envelope>`,
			emails:  []string{"x@example.com"},
			dedupOf: []string{"N9"},
		},
		{
			name:    "no notifications",
			body:    envelope(org),
			skipped: []string{"no Notification"},
		},
		{
			name: "entities and CDATA are read as text",
			body: envelope(org, notif("N1", "Contact",
				`<sf:Email><![CDATA[o'brien@example.com]]></sf:Email><sf:HasOptedOutOfEmail>tr&#117;e</sf:HasOptedOutOfEmail>`+date)),
			emails:  []string{"o'brien@example.com"},
			dedupOf: []string{"N1"},
		},
		{
			name:    "BOM before the declaration",
			body:    "\xef\xbb\xbf" + envelope(org, notif("N1", "Contact", `<sf:Email>a@example.com</sf:Email><sf:HasOptedOutOfEmail>true</sf:HasOptedOutOfEmail>`+date)),
			emails:  []string{"a@example.com"},
			dedupOf: []string{"N1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := src.Parse(&connectors.Request{Body: []byte(tt.body)})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(b.Signals) != len(tt.emails) {
				t.Fatalf("signals = %+v skipped %q", b.Signals, b.Skipped)
			}
			for i, e := range tt.emails {
				s := b.Signals[i]
				if s.Subject.Email != e || s.Status != consent.StatusWithdrawn || s.Channel != consent.ChannelEmail ||
					s.Purpose != consent.PurposeMarketing || s.Brand != "acme" || s.Source != "salesforce-acme" ||
					!s.OccurredAt.Equal(time.Date(2025, 11, 20, 10, 50, 0, 0, time.UTC)) || s.OccurredAt.Location() != time.UTC {
					t.Fatalf("signal %d = %+v", i, s)
				}
				if err := s.Validate(); err != nil {
					t.Fatal(err)
				}
			}
			if strings.Join(b.Skipped, "|") != strings.Join(tt.skipped, "|") {
				t.Fatalf("skipped = %q, want %q", b.Skipped, tt.skipped)
			}
			want := ""
			if len(tt.dedupOf) > 0 {
				sum := sha256.Sum256([]byte(strings.Join(tt.dedupOf, "\n")))
				want = hex.EncodeToString(sum[:])
			}
			if b.DedupKey != want {
				t.Fatalf("dedup = %q, want %q", b.DedupKey, want)
			}
		})
	}
}

func TestParseNasty(t *testing.T) {
	src := newSource(t, config.Source{Secrets: []string{org}})
	f, _ := fixture(t)
	body := string(f.Body)
	billion := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol9 "&lol3;&lol3;&lol3;">]>` +
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notifications><OrganizationId>&lol9;</OrganizationId></notifications></soapenv:Body></soapenv:Envelope>`
	undefinedEntity := strings.Replace(body, "camille.henry@example.com", "&lol9;", 1)
	deep := strings.Repeat("<a>", 100_000) + strings.Repeat("</a>", 100_000)
	wide := "<Envelope><Body><notifications>" + strings.Repeat("<x/>", MaxElements+1) + "</notifications></Body></Envelope>"
	tests := []struct{ name, body string }{
		{"empty", ""},
		{"whitespace", "  \n"},
		{"JSON null", "null"},
		{"JSON array", "[]"},
		{"billion laughs DTD", billion},
		{"undefined entity", undefinedEntity},
		{"deeply nested", deep},
		{"too many elements", wide},
		{"ISO-8859-1 declared", strings.Replace(body, `encoding="UTF-8"`, `encoding="ISO-8859-1"`, 1)},
		{"UTF-16 declared", strings.Replace(body, `encoding="UTF-8"`, `encoding="UTF-16"`, 1)},
		{"invalid UTF-8 bytes", strings.Replace(body, "camille", "cam\xffille", 1)},
		{"NUL character", strings.Replace(body, "camille", "cam\x00ille", 1)},
		{"unclosed", strings.TrimSuffix(strings.TrimSpace(body), "</soapenv:Envelope>")},
		{"mismatched tags", "<a><b></a></b>"},
		{"two roots", "<a/><b/>"},
		{"no notifications element", `<Envelope><Body><other/></Body></Envelope>`},
		{"notifications too deep", `<a><b><c><d><e><notifications/></e></d></c></b></a>`},
		{"text only", "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := src.Parse(&connectors.Request{Body: []byte(tt.body)})
			if !errors.Is(err, connectors.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error too long: %d bytes", len(err.Error()))
			}
			verr := src.Verify(&connectors.Request{Body: []byte(tt.body)}, time.Now())
			if !errors.Is(verr, connectors.ErrUnauthorized) {
				t.Fatalf("Verify err = %v", verr)
			}
		})
	}
	if _, err := src.Parse(nil); !errors.Is(err, connectors.ErrMalformed) {
		t.Fatal(err)
	}
}

// TestNotificationLimit: Salesforce sends 1 to 100 Notification elements
// per message; more is not a Salesforce message. Verify (which reads the
// body for the org id) reports it as malformed too, so the receiver, which
// checks ErrMalformed before ErrUnauthorized, answers 400.
func TestNotificationLimit(t *testing.T) {
	src := newSource(t, config.Source{Secrets: []string{org}})
	date := `<sf:LastModifiedDate>2025-11-20T10:50:00Z</sf:LastModifiedDate>`
	many := func(n int) []byte {
		ns := make([]string, n)
		for i := range ns {
			ns[i] = notif(fmt.Sprintf("N%03d", i), "Contact", fmt.Sprintf(`<sf:Email>p%d@example.com</sf:Email><sf:HasOptedOutOfEmail>true</sf:HasOptedOutOfEmail>`, i)+date)
		}
		return []byte(envelope(org, ns...))
	}
	tests := []struct {
		name      string
		body      []byte
		malformed bool
	}{
		{"1", many(1), false},
		{"100", many(100), false},
		{"101", many(101), true},
		{"1000", many(1000), true},
		// Other children of notifications do not count.
		{"100 and other elements", []byte(strings.Replace(string(many(100)), "<ActionId>", strings.Repeat("<Other/>", 50)+"<ActionId>", 1)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &connectors.Request{Body: tt.body}
			verr := src.Verify(req, time.Now())
			b, perr := src.Parse(req)
			if !tt.malformed {
				if verr != nil || perr != nil {
					t.Fatalf("Verify %v, Parse %v", verr, perr)
				}
				if len(b.Signals) == 0 || len(b.Signals) > MaxNotifications {
					t.Fatalf("%d signals", len(b.Signals))
				}
				return
			}
			if !errors.Is(perr, connectors.ErrMalformed) {
				t.Fatalf("Parse err = %v, want ErrMalformed", perr)
			}
			if !errors.Is(verr, connectors.ErrMalformed) || !errors.Is(verr, connectors.ErrUnauthorized) {
				t.Fatalf("Verify err = %v, want ErrMalformed (and ErrUnauthorized)", verr)
			}
			if strings.Contains(verr.Error(), "@") || strings.Contains(perr.Error(), "@") {
				t.Fatalf("error quotes the body: %v / %v", verr, perr)
			}
		})
	}
}

func TestEncodingErrorIsClear(t *testing.T) {
	f, src := fixture(t)
	body := strings.Replace(string(f.Body), `encoding="UTF-8"`, `encoding="windows-1252"`, 1)
	_, err := src.Parse(&connectors.Request{Body: []byte(body)})
	if !errors.Is(err, connectors.ErrMalformed) || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	fx, src := fixture(f)
	f.Add(fx.Body)
	f.Add([]byte(envelope(org[:15])))
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		err := src.Verify(&connectors.Request{Body: body}, fx.Now)
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("error does not wrap ErrUnauthorized: %v", err)
		}
		if err == nil {
			msg, derr := decode(body)
			if derr != nil || !sameOrg(strings.TrimSpace(msg.OrganizationID), org) {
				t.Fatalf("accepted without the org id")
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	fx, src := fixture(f)
	f.Add(fx.Body)
	f.Add([]byte(envelope(org, notif("N1", "Lead", `<sf:Email>a@b</sf:Email><sf:HasOptedOutOfEmail>1</sf:HasOptedOutOfEmail>`))))
	f.Add([]byte(`<a><notifications><Notification><sObject><Email>x</Email></sObject></Notification></notifications></a>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b := fixtures.FuzzParse(t, src, &connectors.Request{Body: body})
		if b == nil {
			return
		}
		if len(b.Signals) > MaxNotifications {
			t.Fatalf("%d signals from one message", len(b.Signals))
		}
		for _, s := range b.Signals {
			if s.Status != consent.StatusWithdrawn || s.Evidence.Event != "HasOptedOutOfEmail" {
				t.Fatalf("bad signal %+v", s)
			}
		}
	})
}

// TestWithdrawalWithoutDateIsKept: an outbound message that sends neither
// LastModifiedDate nor SystemModstamp (fields the admin did not select)
// still withdraws, dated at arrival.
func TestWithdrawalWithoutDateIsKept(t *testing.T) {
	t.Parallel()
	src := newSource(t, config.Source{Secrets: []string{org}})
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	body := envelope(org, notif("N1", "Contact", `<sf:Email>a@example.com</sf:Email><sf:HasOptedOutOfEmail>true</sf:HasOptedOutOfEmail>`),
		notif("N2", "Contact", `<sf:Email>b@example.com</sf:Email><sf:HasOptedOutOfEmail>true</sf:HasOptedOutOfEmail><sf:LastModifiedDate>0005-01-01T00:00:00Z</sf:LastModifiedDate>`))
	b, err := src.Parse(&connectors.Request{Body: []byte(body), ReceivedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Signals) != 2 {
		t.Fatalf("signals %+v skipped %q, want 2 withdrawals", b.Signals, b.Skipped)
	}
	for _, sig := range b.Signals {
		if sig.Status != consent.StatusWithdrawn || !sig.OccurredAt.Equal(at) {
			t.Fatalf("%+v, want a withdrawal dated %s", sig, at)
		}
	}
}
