package consent

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// This file tells who an address belongs to: a legal entity (a role
// address), a person at work (professional), or a private person. The
// answer picks the legal regime (docs/rules.md, "Who needs an opt-in"):
//
//   - CNIL, "La prospection commerciale par courrier électronique",
//     https://www.cnil.fr/fr/la-prospection-commerciale-par-courrier-electronique:
//     professionals may be prospected at their work address without prior
//     consent when the message relates to their job, if told and able to
//     object; generic addresses of a legal entity (contact@, info@...) are
//     not subject to the rules protecting persons.
//   - CPCE art. L34-5 (consent of "personnes physiques").

// roleLocalParts are local parts that name a function, not a person, in
// English and French, compacted: lower-case, without '.', '-' and '_' (so
// "no-reply", "no_reply" and "noreply" are one entry) and without trailing
// digits ("info2"). Only whole local parts match: "contact-paris" or
// "jean.contact" are not role addresses.
var roleLocalParts = setOf(
	// English
	"abuse", "accounting", "accounts", "admin", "administrator", "billing",
	"booking", "bookings", "careers", "contact", "contacts", "contactus",
	"customercare", "customerservice", "customersupport", "donotreply",
	"enquiries", "enquiry", "feedback", "finance", "hello", "help",
	"helpdesk", "hostmaster", "hr", "info", "information", "inquiries",
	"inquiry", "invoice", "invoices", "it", "jobs", "legal", "mail",
	"mailerdaemon", "marketing", "media", "news", "newsletter", "noreply",
	"office", "orders", "partners", "partnerships", "postmaster", "press",
	"privacy", "reception", "recruiting", "recruitment", "root", "sales",
	"security", "service", "shop", "staff", "support", "team", "webmaster",
	"welcome", "www",
	// French
	"accueil", "achats", "administrateur", "administration", "agence",
	"bonjour", "boutique", "bureau", "cabinet", "candidature",
	"candidatures", "commande", "commandes", "commercial", "communication",
	"compta", "comptabilite", "comptabilité", "devis", "direction", "dpo",
	"emploi", "equipe", "équipe", "facturation", "factures", "gestion",
	"hotline", "informatique", "infos", "informations", "juridique", "magasin", "mairie",
	"nepasrepondre", "paie", "partenariat", "partenariats", "presse",
	"recrutement", "reservation", "reservations", "réservation",
	"réservations", "rgpd", "rh", "sav", "secretariat", "secrétariat",
	"serviceclient", "serviceclients", "servicecommercial", "standard",
	"ventes",
)

// roleSeparators are dropped from a local part before matching
// roleLocalParts (a Replacer is safe for concurrent use).
var roleSeparators = strings.NewReplacer(".", "", "-", "", "_", "")

// IsRoleAddress reports whether an address's local part names a function
// rather than a person (contact@, info@, sales@, ventes@, accueil@,
// service-client@, noreply@ ...; see roleLocalParts for the full list).
// The local part is read case-insensitively, before any "+tag"
// ("Contact+x@acme.fr" is a role address), ignoring '.', '-', '_' and
// trailing digits, with surrounding quotes removed. An input without '@'
// is not an address: false.
//
// The answer is about the local part only: "sales@gmail.com" is a role
// address by name, but a free-mail account belongs to whoever opened it.
// Use IsLegalEntityAddress for the regime.
//
// Source: CNIL, "La prospection commerciale par courrier électronique"
// (adresses génériques de personnes morales: contact@, info@ ...).
func IsRoleAddress(email string) bool {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 {
		return false
	}
	local := strings.Trim(strings.TrimSpace(email[:at]), `"`)
	if i := strings.IndexByte(local, '+'); i >= 0 {
		local = local[:i]
	}
	if local == "" || len(local) > 64 || !utf8.ValidString(local) {
		return false
	}
	local = strings.ToLower(local)
	local = roleSeparators.Replace(local)
	local = strings.TrimRight(local, "0123456789")
	return roleLocalParts[local]
}

// IsLegalEntityAddress reports whether an address belongs to a legal entity
// rather than a person: a role address (IsRoleAddress) at a domain that is
// not free mail (IsFreeMailDomain). "contact@acme.fr" is; "sales@gmail.com"
// is not — anyone can open that mailbox, so the rules protecting persons
// keep applying (fail-closed).
//
// Source: CNIL, "La prospection commerciale par courrier électronique".
func IsLegalEntityAddress(email string) bool {
	return IsRoleAddress(email) && !IsFreeMailDomain(emailDomain(email))
}

// freeMailDomains are consumer mailbox providers, matched on the exact
// domain or its registrable domain ("mail.gmail.com" → "gmail.com").
var freeMailDomains = setOf(
	// Global
	"gmail.com", "googlemail.com", "icloud.com", "me.com", "mac.com",
	"msn.com", "passport.com", "ymail.com", "rocketmail.com", "mail.com",
	"email.com", "proton.me", "protonmail.com", "protonmail.ch", "pm.me",
	"tutanota.com", "tutanota.de", "tutamail.com", "tuta.io", "tuta.com",
	"zoho.com", "zohomail.com", "fastmail.com", "fastmail.fm", "hey.com",
	"mail.ru", "bk.ru", "list.ru", "inbox.ru", "rambler.ru", "ukr.net",
	"qq.com", "163.com", "126.com", "naver.com", "daum.net",
	"comcast.net", "verizon.net", "att.net", "sbcglobal.net",
	"btinternet.com", "sky.com", "virginmedia.com", "ntlworld.com",
	// France
	"orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr", "neuf.fr",
	"cegetel.net", "bbox.fr", "club-internet.fr", "numericable.fr",
	"noos.fr", "aliceadsl.fr", "alice.fr", "9online.fr", "libertysurf.fr",
	"tele2.fr", "voila.fr", "nordnet.fr", "akeonet.com",
	// Belgium, Switzerland, Germany, Italy, Spain, Netherlands, Poland, Czechia
	"skynet.be", "telenet.be", "proximus.be", "bluewin.ch", "sunrise.ch",
	"t-online.de", "web.de", "freenet.de", "arcor.de", "posteo.de",
	"mailbox.org", "libero.it", "virgilio.it", "tiscali.it", "alice.it",
	"tim.it", "telefonica.net", "terra.es", "ziggo.nl", "kpnmail.nl",
	"planet.nl", "wp.pl", "o2.pl", "interia.pl", "onet.pl", "seznam.cz",
)

// freeMailFamilies are providers with one free-mail domain per country:
// any registrable domain whose first label is one of these ("yahoo.co.uk",
// "hotmail.fr", "outlook.de", "live.be", "gmx.net") is free mail. A
// subdomain of another domain ("live.acme.com") is not: its registrable
// domain is acme.com.
var freeMailFamilies = setOf("yahoo", "hotmail", "outlook", "live", "windowslive", "aol", "gmx", "yandex")

// IsFreeMailDomain reports whether domain (already normalized: lower-case,
// ASCII/punycode; case and a trailing dot are tolerated) is a consumer
// mailbox provider whose addresses are never professional: the domain, or
// its registrable domain (public suffix list, golang.org/x/net/publicsuffix),
// is in freeMailDomains, or the registrable domain's first label is in
// freeMailFamilies (yahoo.*, hotmail.*, outlook.*, live.*, aol.*, gmx.*,
// yandex.*).
//
// Source: docs/rules.md ("free-mail domains such as gmail.com, yahoo.fr,
// orange.fr, free.fr, hotmail.* are never professional"); CNIL, "La
// prospection commerciale par courrier électronique" (the B2B regime covers
// work addresses only).
func IsFreeMailDomain(domain string) bool {
	d := cleanDomain(domain)
	if d == "" {
		return false
	}
	if freeMailDomains[d] {
		return true
	}
	reg, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return false
	}
	if freeMailDomains[reg] {
		return true
	}
	first, _, _ := strings.Cut(reg, ".")
	return freeMailFamilies[first]
}

// IsProfessional reports whether an address is a professional (work)
// address, so that the B2B opt-out regime applies to it:
//
//  1. a free-mail domain (IsFreeMailDomain) is never professional, whatever
//     a signal or the policy says;
//  2. a domain in professionalDomains (policy.professional_domains), or a
//     subdomain of one, is professional; listed domains may be written in
//     Unicode or punycode, with or without a leading "@" or "*.";
//  3. otherwise the signal decides (a CRM company/account field, a form's
//     profile field: signalSaysProfessional).
//
// An empty email (a phone-only subject) leaves the signal to decide.
//
// Source: docs/rules.md ("Who needs an opt-in"); CNIL, "La prospection
// commerciale par courrier électronique" (professionnels: adresse
// professionnelle, message en rapport avec leur profession).
func IsProfessional(email string, professionalDomains []string, signalSaysProfessional bool) bool {
	d := cleanDomain(emailDomain(email))
	if d == "" {
		return signalSaysProfessional
	}
	if IsFreeMailDomain(d) {
		return false
	}
	for _, pd := range professionalDomains {
		pd = cleanDomain(strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(pd), "@"), "*."))
		if pd != "" && (d == pd || strings.HasSuffix(d, "."+pd)) {
			return true
		}
	}
	return signalSaysProfessional
}

// emailDomain returns what follows the last '@', or "" without one.
func emailDomain(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return ""
	}
	return email[at+1:]
}

// cleanDomain lower-cases a domain, drops surrounding dots and white space,
// and converts a Unicode domain to punycode (IDNA Lookup profile, as
// NormalizeEmail does). A domain that does not convert is kept lower-cased.
func cleanDomain(d string) string {
	d = strings.ToLower(strings.TrimFunc(d, func(r rune) bool { return r == '.' || unicode.IsSpace(r) }))
	if d == "" {
		return ""
	}
	for i := 0; i < len(d); i++ {
		if d[i] >= utf8.RuneSelf {
			if a, err := idna.Lookup.ToASCII(d); err == nil && a != "" {
				return strings.ToLower(a)
			}
			break
		}
	}
	return d
}

func setOf(xs ...string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}
