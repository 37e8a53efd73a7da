package config

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// secretsFromEnv references three variables from four places.
const secretsFromEnv = `
sources:
  - name: s1
    kind: form
    brand: acme
    secrets: ["${FORM_SECRET}"]
  - name: s2
    kind: hubspot
    brand: acme
    secrets: ["${HUBSPOT_SECRET}", "${FORM_SECRET}"]
destinations:
  - name: d1
    kind: sendgrid
    brand: acme
    api_key: key
  - name: d2
    kind: sendgrid
    brand: beta
    api_key: ${SENDGRID_KEY}
`

func TestParseReportsEveryUnsetVariable(t *testing.T) {
	_, err := Parse([]byte(secretsFromEnv), vars(nil))
	want := "config: unset environment variables: FORM_SECRET, HUBSPOT_SECRET, SENDGRID_KEY (referenced at " +
		"sources[0].secrets[0] (line 6), sources[1].secrets[0] (line 10), sources[1].secrets[1] (line 10), destinations[1].api_key (line 19))"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant  %s", err, want)
	}
	// One set, two still unset.
	_, err = Parse([]byte(secretsFromEnv), vars(map[string]string{"FORM_SECRET": "f"}))
	if err == nil || !strings.Contains(err.Error(), "variables: HUBSPOT_SECRET, SENDGRID_KEY (referenced at sources[1].secrets[0] (line 10), destinations[1].api_key") {
		t.Errorf("err = %v", err)
	}
}

func TestParseAllowMissingSecrets(t *testing.T) {
	ro := Options{AllowMissingSecrets: true}
	c, err := ParseWith([]byte(secretsFromEnv), vars(map[string]string{"HUBSPOT_SECRET": "h"}), ro)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ReadOnly || !slices.Equal(c.Unset, []string{"FORM_SECRET", "SENDGRID_KEY"}) {
		t.Errorf("ReadOnly %v, Unset %v", c.ReadOnly, c.Unset)
	}
	s2, _ := c.Source("s2")
	d2, _ := c.Destination("d2")
	if !slices.Equal(s2.Secrets, []string{"h", ""}) || d2.APIKey != "" {
		t.Errorf("expansion: secrets %q, api_key %q", s2.Secrets, d2.APIKey)
	}

	// Everything but secrets is still validated.
	bad := strings.Replace(secretsFromEnv, "kind: hubspot", "kind: hubspott", 1)
	bad = strings.Replace(bad, "brand: beta", "brand: ${BRAND}", 1)
	_, err = ParseWith([]byte(bad), vars(nil), ro)
	if err == nil || !strings.Contains(err.Error(), `sources[1].kind: "hubspott" is not a source kind`) ||
		!strings.Contains(err.Error(), "destinations[1].brand: is required") ||
		strings.Contains(err.Error(), "secrets") || strings.Contains(err.Error(), "api_key") {
		t.Errorf("err = %v", err)
	}
	// An api_key left out of the file is accepted too.
	if _, err := ParseWith([]byte("destinations:\n  - {name: d1, kind: sendgrid, brand: acme}\n"), vars(nil), ro); err != nil {
		t.Errorf("no api_key, read-only: %v", err)
	}

	// The default is unchanged: secrets are required.
	c, err = ParseWith([]byte(valid), vars(nil), Options{})
	if err != nil || c.ReadOnly || c.Unset != nil {
		t.Errorf("default options: %v, ReadOnly %v", err, c != nil && c.ReadOnly)
	}
}

func TestLoadReadOnly(t *testing.T) {
	path := t.TempDir() + "/c.yaml"
	if err := writeFile(path, secretsFromEnv); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvConfigFile, path)
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "unset environment variables: FORM_SECRET, HUBSPOT_SECRET, SENDGRID_KEY") {
		t.Errorf("Load: err = %v", err)
	}
	c, err := LoadReadOnly()
	if err != nil {
		t.Fatal(err)
	}
	if !c.ReadOnly || len(c.Sources) != 2 || c.Process.RedisURL == "" {
		t.Errorf("LoadReadOnly = %+v", c)
	}
}

func TestWithdrawalScope(t *testing.T) {
	c, err := Parse([]byte(valid), vars(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Sources[0].WithdrawalScope != "brand" {
		t.Errorf("default scope = %q", c.Sources[0].WithdrawalScope)
	}
	all := strings.Replace(valid, "    brand: acme\n", "    brand: acme\n    withdrawal_scope: all_brands\n", 1)
	if c, err := Parse([]byte(all), vars(nil)); err != nil || c.Sources[0].WithdrawalScope != "all_brands" {
		t.Errorf("all_brands: %v", err)
	}
	bad := strings.Replace(valid, "    brand: acme\n", "    brand: acme\n    withdrawal_scope: everything\n", 1)
	if _, err := Parse([]byte(bad), vars(nil)); err == nil || !strings.Contains(err.Error(), `sources[0].withdrawal_scope: "everything"`) {
		t.Errorf("bad scope: err = %v", err)
	}
}

func TestBrands(t *testing.T) {
	data := `
sources:
  - name: mc
    kind: mailchimp
    brand: acme
    secrets: [k]
    lists: {l1: zeta, l2: acme}
  - name: sg
    kind: sendgrid
    brand: beta
    secrets: [k]
    groups: {"12": {purpose: marketing, brand: gamma}, "13": {purpose: partners}}
  - name: f
    kind: form
    brand: acme
    secrets: [k]
    fields: {consents: [{field: a, channel: email, purpose: marketing, brand: delta}, {field: b, channel: sms, purpose: marketing}]}
destinations:
  - {name: d1, kind: sendgrid, brand: epsilon, api_key: k}
  - {name: d2, kind: sendgrid, brand: acme, api_key: k}
`
	c, err := Parse([]byte(data), vars(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Brands(), []string{"acme", "beta", "delta", "epsilon", "gamma", "zeta"}; !slices.Equal(got, want) {
		t.Errorf("Brands() = %v, want %v", got, want)
	}
	if got := (&Config{}).Brands(); len(got) != 0 {
		t.Errorf("empty config: %v", got)
	}
}

func writeFile(path, data string) error { return os.WriteFile(path, []byte(data), 0o600) }

// TestRootExampleParses: the example users copy (consentsync.example.yaml
// at the repository root) is valid, and with every secret set it loads in
// full; unset, the read-only load names them all.
func TestRootExampleParses(t *testing.T) {
	data, err := os.ReadFile("../consentsync.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set := func(string) (string, bool) { return "x", true }
	c, err := Parse(data, set)
	if err != nil {
		t.Fatalf("example with every variable set: %v", err)
	}
	s, ok := c.Source("unsubscribe-page")
	if !ok || s.WithdrawalScope != "all_brands" {
		t.Errorf("unsubscribe-page: %+v", s)
	}
	unset := func(string) (string, bool) { return "", false }
	if _, err := Parse(data, unset); err == nil || !strings.Contains(err.Error(), "SENDGRID_API_KEY") || !strings.Contains(err.Error(), "FORM_SECRET") {
		t.Errorf("example with nothing set: %v, want every unset variable named", err)
	}
	if _, err := ParseWith(data, unset, Options{AllowMissingSecrets: true}); err != nil {
		t.Errorf("read-only load of the example: %v", err)
	}
}
