package consent

import (
	"strings"
	"testing"

	"golang.org/x/net/idna"
)

func TestIsRoleAddress(t *testing.T) {
	for _, tc := range []struct {
		email string
		want  bool
	}{
		{"contact@acme.fr", true},
		{"Contact+x@acme.fr", true},
		{"CONTACT@ACME.FR", true},
		{"info@acme.fr", true},
		{"info2@acme.fr", true},
		{"hello@acme.io", true},
		{"bonjour@acme.fr", true},
		{"sales@acme.com", true},
		{"ventes@acme.fr", true},
		{"commercial@acme.fr", true},
		{"support@acme.fr", true},
		{"admin@acme.fr", true},
		{"office@acme.at", true},
		{"accueil@mairie-x.fr", true},
		{"compta@acme.fr", true},
		{"comptabilite@acme.fr", true},
		{"comptabilité@acme.fr", true},
		{"rh@acme.fr", true},
		{"jobs@acme.fr", true},
		{"recrutement@acme.fr", true},
		{"marketing@acme.fr", true},
		{"newsletter@acme.fr", true},
		{"noreply@acme.fr", true},
		{"no-reply@acme.fr", true},
		{"no_reply@acme.fr", true},
		{"do-not-reply@acme.fr", true},
		{"ne-pas-repondre@acme.fr", true},
		{"postmaster@acme.fr", true},
		{"webmaster@acme.fr", true},
		{"abuse@acme.fr", true},
		{"team@acme.fr", true},
		{"equipe@acme.fr", true},
		{"équipe@acme.fr", true},
		{"service-client@acme.fr", true},
		{"service.client@acme.fr", true},
		{"direction@acme.fr", true},
		{`"info"@acme.fr`, true},
		{"sales@gmail.com", true}, // by name; IsLegalEntityAddress says no
		{"contact@xn--socit-esab.fr", true},
		// persons and near misses
		{"jeanne.dupont@acme.fr", false},
		{"contact-paris@acme.fr", false},
		{"jean.contact@acme.fr", false},
		{"jean+contact@acme.fr", false},
		{"+contact@acme.fr", false},
		{"infos-jeanne@acme.fr", false},
		{"hr.manager@acme.fr", false},
		{"contact", false},
		{"@acme.fr", false},
		{"", false},
		{"contact@", true}, // local part decides; NormalizeEmail rejects such input earlier
		{strings.Repeat("a", 70) + "@acme.fr", false},
		{"\xffinfo@acme.fr", false},
	} {
		if got := IsRoleAddress(tc.email); got != tc.want {
			t.Errorf("IsRoleAddress(%q) = %v, want %v", tc.email, got, tc.want)
		}
	}
}

func TestIsFreeMailDomain(t *testing.T) {
	for _, tc := range []struct {
		domain string
		want   bool
	}{
		{"gmail.com", true},
		{"googlemail.com", true},
		{"GMAIL.COM.", true},
		{"mail.gmail.com", true},
		{"yahoo.com", true},
		{"yahoo.fr", true},
		{"yahoo.co.uk", true},
		{"yahoo.co.jp", true},
		{"ymail.com", true},
		{"hotmail.com", true},
		{"hotmail.fr", true},
		{"hotmail.co.uk", true},
		{"outlook.com", true},
		{"outlook.fr", true},
		{"live.fr", true},
		{"live.co.uk", true},
		{"msn.com", true},
		{"aol.com", true},
		{"aol.fr", true},
		{"gmx.de", true},
		{"gmx.net", true},
		{"gmx.fr", true},
		{"web.de", true},
		{"yandex.ru", true},
		{"yandex.com", true},
		{"mail.ru", true},
		{"icloud.com", true},
		{"me.com", true},
		{"mac.com", true},
		{"proton.me", true},
		{"protonmail.com", true},
		{"tutanota.com", true},
		{"zoho.com", true},
		{"orange.fr", true},
		{"wanadoo.fr", true},
		{"free.fr", true},
		{"laposte.net", true},
		{"sfr.fr", true},
		{"neuf.fr", true},
		{"bbox.fr", true},
		{"club-internet.fr", true},
		{"numericable.fr", true},
		// not free mail
		{"acme.fr", false},
		{"orange.com", false}, // the company, not the ISP mailbox
		{"laposte.fr", false}, // La Poste staff, not laposte.net
		{"free.com", false},   // "free" is no family
		{"free.fr.acme.io", false},
		{"live.acme.com", false}, // a subdomain, not the live.* family
		{"yahoo.acme.fr", false}, // idem
		{"gmail.com.evil.fr", false},
		{"notgmail.com", false},
		{"xn--bcher-kva.de", false}, // bücher.de
		{"xn--socit-esab.fr", false},
		{"com", false},
		{"", false},
		{".", false},
		{"a..b", false},
	} {
		if got := IsFreeMailDomain(tc.domain); got != tc.want {
			t.Errorf("IsFreeMailDomain(%q) = %v, want %v", tc.domain, got, tc.want)
		}
	}
}

func TestIsProfessional(t *testing.T) {
	societe, err := idna.Lookup.ToASCII("société.fr")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		email   string
		domains []string
		signal  bool
		want    bool
	}{
		{"listed domain", "jeanne@acme.fr", []string{"acme.fr"}, false, true},
		{"subdomain of a listed domain", "jeanne@paris.acme.fr", []string{"acme.fr"}, false, true},
		{"suffix but not a subdomain", "jeanne@notacme.fr", []string{"acme.fr"}, false, false},
		{"parent of a listed domain", "jeanne@acme.fr", []string{"paris.acme.fr"}, false, false},
		{"signal alone", "jeanne@acme.fr", nil, true, true},
		{"nothing says so", "jeanne@acme.fr", []string{"other.fr"}, false, false},
		{"free mail beats the signal", "jeanne@gmail.com", nil, true, false},
		{"free mail beats the policy", "jeanne@gmail.com", []string{"gmail.com"}, true, false},
		{"free-mail family", "jeanne@hotmail.fr", nil, true, false},
		{"free-mail country domain", "jeanne@yahoo.co.uk", []string{"yahoo.co.uk"}, true, false},
		{"listed spelling variants", "jeanne@acme.fr", []string{" @ACME.fr. "}, false, true},
		{"wildcard spelling", "jeanne@x.acme.fr", []string{"*.acme.fr"}, false, true},
		{"case of the address", "Jeanne@ACME.FR", []string{"acme.fr"}, false, true},
		{"trailing dot", "jeanne@acme.fr.", []string{"acme.fr"}, false, true},
		{"IDN listed in Unicode, address in punycode", "jeanne@" + societe, []string{"société.fr"}, false, true},
		{"IDN listed in punycode, address in Unicode", "jeanne@Société.fr", []string{societe}, false, true},
		{"empty listed domains", "jeanne@acme.fr", []string{"", " ", "@", "*."}, false, false},
		{"phone-only subject, signal", "", []string{"acme.fr"}, true, true},
		{"phone-only subject, no signal", "", []string{"acme.fr"}, false, false},
		{"role address at a listed domain", "contact@acme.fr", []string{"acme.fr"}, false, true},
	} {
		if got := IsProfessional(tc.email, tc.domains, tc.signal); got != tc.want {
			t.Errorf("%s: IsProfessional(%q, %q, %v) = %v, want %v", tc.name, tc.email, tc.domains, tc.signal, got, tc.want)
		}
	}
}

func TestIsLegalEntityAddress(t *testing.T) {
	for _, tc := range []struct {
		email string
		want  bool
	}{
		{"contact@acme.fr", true},
		{"Contact+x@acme.fr", true},
		{"info@xn--socit-esab.fr", true},
		{"sales@gmail.com", false}, // a person's free mailbox named "sales"
		{"contact@yahoo.co.uk", false},
		{"info@orange.fr", false},
		{"jeanne@acme.fr", false},
		{"", false},
	} {
		if got := IsLegalEntityAddress(tc.email); got != tc.want {
			t.Errorf("IsLegalEntityAddress(%q) = %v, want %v", tc.email, got, tc.want)
		}
	}
}

// asciiUpper upper-cases ASCII letters only, leaving every other byte.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func FuzzIsRoleAddress(f *testing.F) {
	for _, s := range []string{"contact@acme.fr", "Contact+x@acme.fr", "sales@gmail.com", `"info"@a.b`, "a@b@c", "\xff@\x00", "info@yahoo.co.uk", "@", "x@..", "x@.gmail.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, email string) {
		role := IsRoleAddress(email)
		if IsRoleAddress(asciiUpper(email)) != role {
			t.Fatalf("case changes the answer for %q", email)
		}
		if IsLegalEntityAddress(email) && !role {
			t.Fatalf("legal entity but not a role address: %q", email)
		}
		d := emailDomain(email)
		free := IsFreeMailDomain(d)
		if free != IsFreeMailDomain(asciiUpper(d)) {
			t.Fatalf("case changes the free-mail answer for %q", d)
		}
		if free && IsProfessional(email, []string{d}, true) {
			t.Fatalf("free-mail address %q is professional", email)
		}
		if c := cleanDomain(d); !free && c != "" && !IsProfessional(email, []string{c}, false) {
			t.Fatalf("address %q is not professional at its own listed domain", email)
		}
	})
}
