package pages

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/text/language"

	"github.com/consentsync/consentsync/consent"
)

// catalogueJSON holds every text the pages show, in every language, and
// the consent wordings with their versions: the one catalogue.
//
//go:embed catalogue.json
var catalogueJSON []byte

// Catalogue is the pages' texts (catalogue.json).
type Catalogue struct {
	Languages []string                     `json:"languages"`
	Messages  map[string]map[string]string `json:"messages"`
	// Wordings are the consent texts shown beside each toggle, by
	// "channel.purpose" ("other" for the rest, "confirm" for the double
	// opt-in page), each with its version.
	Wordings map[string]map[string]string `json:"wordings"`

	matcher language.Matcher
}

// LoadCatalogue parses the embedded catalogue and checks that every
// message and wording has every language (and a version).
func LoadCatalogue() (*Catalogue, error) {
	var c Catalogue
	if err := json.Unmarshal(catalogueJSON, &c); err != nil {
		return nil, fmt.Errorf("pages: catalogue: %w", err)
	}
	if len(c.Languages) == 0 {
		return nil, fmt.Errorf("pages: catalogue: no languages")
	}
	tags := make([]language.Tag, len(c.Languages))
	for i, l := range c.Languages {
		tags[i] = language.Make(l)
	}
	c.matcher = language.NewMatcher(tags)
	for k, m := range c.Messages {
		for _, l := range c.Languages {
			if m[l] == "" {
				return nil, fmt.Errorf("pages: catalogue: message %q has no %q text", k, l)
			}
		}
	}
	for k, m := range c.Wordings {
		for _, l := range append([]string{"version"}, c.Languages...) {
			if m[l] == "" {
				return nil, fmt.Errorf("pages: catalogue: wording %q has no %q", k, l)
			}
		}
	}
	return &c, nil
}

// Lang picks the page's language: ?lang= (or the form's lang field,
// formLang) when it names a catalogue language, else the best match of
// Accept-Language (RFC 9110 §12.5.4), else the catalogue's first language
// (English).
func (c *Catalogue) Lang(r *http.Request, formLang string) string {
	if l := r.URL.Query().Get("lang"); slices.Contains(c.Languages, l) {
		return l
	}
	if slices.Contains(c.Languages, formLang) {
		return formLang
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return c.Languages[0]
	}
	_, i, conf := c.matcher.Match(tags...)
	if conf == language.No {
		return c.Languages[0]
	}
	return c.Languages[i]
}

// Texts are the catalogue's messages in one language.
type Texts struct {
	Lang string
	c    *Catalogue
}

// In returns the texts of lang.
func (c *Catalogue) In(lang string) Texts { return Texts{Lang: lang, c: c} }

// Get returns message key with each "{name}" replaced by the value after
// it in args (name, value, name, value, ...). An unknown key renders as
// the key itself (a catalogue test makes sure none is used).
func (t Texts) Get(key string, args ...string) string {
	m, ok := t.c.Messages[key]
	if !ok {
		return key
	}
	return fill(m[t.Lang], args)
}

func fill(s string, args []string) string {
	if len(args) < 2 {
		return s
	}
	pairs := make([]string, 0, len(args))
	for i := 0; i+1 < len(args); i += 2 {
		pairs = append(pairs, "{"+args[i]+"}", args[i+1])
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// What names what a key's messages are ("marketing emails").
func (t Texts) What(k consent.Key) string {
	key := "what_" + string(k.Channel) + "_" + string(k.Purpose)
	if _, ok := t.c.Messages[key]; ok {
		return t.Get(key)
	}
	return t.Get("what_other", "purpose", string(k.Purpose), "channel", string(k.Channel))
}

// Wording is one consent text as shown, with its version and the hash of
// the exact text shown (evidence.wording_version and wording_hash).
type Wording struct {
	Text    string
	Version string
	// Hash is "sha256:" + the hex SHA-256 of Text (UTF-8).
	Hash string
}

// Short is the hash's first 12 hex digits, for display.
func (w Wording) Short() string {
	if len(w.Hash) > 19 {
		return w.Hash[:19]
	}
	return w.Hash
}

// Wording returns the consent text of k in the texts' language.
func (t Texts) Wording(k consent.Key) Wording {
	key := string(k.Channel) + "." + string(k.Purpose)
	if _, ok := t.c.Wordings[key]; !ok {
		key = "other"
	}
	return t.wording(key, "brand", k.Brand, "channel", string(k.Channel), "purpose", string(k.Purpose))
}

// ConfirmWording is the double opt-in page's text for k.
func (t Texts) ConfirmWording(k consent.Key) Wording {
	return t.wording("confirm", "brand", k.Brand, "what", t.What(k))
}

func (t Texts) wording(key string, args ...string) Wording {
	m := t.c.Wordings[key]
	text := fill(m[t.Lang], args)
	sum := sha256.Sum256([]byte(text))
	return Wording{Text: text, Version: m["version"], Hash: "sha256:" + hex.EncodeToString(sum[:])}
}
