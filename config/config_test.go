package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const exampleFile = "../internal/fixtures/testdata/consentsync.example.yaml"

// env returns a lookup over m.
func vars(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// option returns what path names in o, a Source's or Destination's Options
// (a vendor struct this package cannot name): each step is a yaml key of a
// struct or a key of a map. It returns nil when a step is missing.
func option(o any, path ...string) any {
	v := reflect.ValueOf(o)
	for _, step := range path {
		for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
			if v.IsNil() {
				return nil
			}
			v = v.Elem()
		}
		switch v.Kind() {
		case reflect.Struct:
			found := false
			for i := range v.NumField() {
				if name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); name == step {
					v, found = v.Field(i), true
					break
				}
			}
			if !found {
				return nil
			}
		case reflect.Map:
			if v = v.MapIndex(reflect.ValueOf(step)); !v.IsValid() {
				return nil
			}
		default:
			return nil
		}
	}
	if !v.IsValid() || !v.CanInterface() {
		return nil
	}
	return v.Interface()
}

// valid is the smallest config with one source and one destination.
const valid = `
sources:
  - name: s1
    kind: form
    brand: acme
    secrets: [k1]
destinations:
  - name: d1
    kind: sendgrid
    brand: acme
    api_key: key
`

func TestParseExample(t *testing.T) {
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, vars(map[string]string{"SANDBOX_URL": "http://127.0.0.1:9999"}))
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if len(c.Sources) != 15 || len(c.Destinations) != 2 {
		t.Fatalf("got %d sources, %d destinations", len(c.Sources), len(c.Destinations))
	}
	hs, ok := c.Source("hubspot-acme")
	if !ok {
		t.Fatal("no hubspot-acme")
	}
	if option(hs.Options, "api_base_url") != "http://127.0.0.1:9999/hubspot" || option(hs.Options, "public_url") != "https://hooks.example.com" ||
		!slices.Equal(hs.Secrets, []string{"hs-client-secret-7f3a"}) {
		t.Errorf("hubspot-acme = %+v", hs)
	}
	for _, s := range c.Sources {
		if s.Tolerance != 5*time.Minute || s.Timezone != "UTC" || s.Profile != "prospect" || s.Brand != "acme" {
			t.Errorf("%s: defaults not applied: %+v", s.Name, s)
		}
	}
	tf, _ := c.Source("typeform-acme")
	if tf.Fields == nil || tf.Fields.WordingVersion != "hidden.consent_version" || len(tf.Fields.Consents) != 2 ||
		tf.Fields.Consents[1] != (ConsentField{Field: "partners_optin", Channel: "email", Purpose: "partners", PartnerList: "partners-2025-10"}) {
		t.Errorf("typeform-acme fields = %+v", tf.Fields)
	}
	sg, _ := c.Source("sendgrid-acme")
	if option(sg.Options, "groups", "1201", "purpose") != "marketing" {
		t.Errorf("sendgrid-acme groups = %+v", option(sg.Options, "groups"))
	}
	mc, _ := c.Source("mailchimp-acme")
	if option(mc.Options, "lists", "a6b5da1054") != "acme" {
		t.Errorf("mailchimp-acme lists = %+v", option(mc.Options, "lists"))
	}
	form, _ := c.Source("signup-form")
	if form.Signature == nil || *form.Signature != (Signature{Header: "X-Signature", Algorithm: "sha256", Encoding: "hex"}) {
		t.Errorf("signup-form signature = %+v", form.Signature)
	}
	d, ok := c.Destination("mailchimp-acme")
	if !ok || d.BaseURL != "http://127.0.0.1:9999/mailchimp" || fmt.Sprint(d.Options) != "&{a6b5da1054}" || d.APIKey != "demo-key-us21" ||
		!slices.Equal(d.Channels, []string{"email"}) || !slices.Equal(d.Purposes, []string{"marketing"}) || d.Timeout != 10*time.Second {
		t.Errorf("mailchimp-acme destination = %+v", d)
	}
	if _, ok := c.Source("nope"); ok {
		t.Error("Source(nope) found")
	}
	if _, ok := c.Destination("nope"); ok {
		t.Error("Destination(nope) found")
	}
}

func TestParseExampleNeedsSandboxURL(t *testing.T) {
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(data, vars(nil))
	if err == nil {
		t.Fatal("want an error for unset SANDBOX_URL")
	}
	for _, want := range []string{"unset environment variable: SANDBOX_URL (referenced at sources[0].api_base_url (line 7), sources[1].api_base_url (line 10), destinations[0].base_url"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(valid), vars(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Policy: Policy{ConsentTTL: 26280 * time.Hour, PhoneRegion: "FR", WithdrawalDeadline: 48 * time.Hour},
		Server: Server{BodyLimit: 1 << 20, DrainGrace: 5 * time.Second, CommitWait: 2 * time.Millisecond, CommitRows: 256},
		Worker: Worker{Concurrency: 4, InboundBatch: 100, PushConcurrency: 4,
			PushLinger: 200 * time.Millisecond, CircuitFailures: 3, SweepAfter: 30 * time.Second, SweepEvery: 15 * time.Second,
			MaxRetry: 12, PushWaitCap: 30 * time.Second, PushBatch: 500,
			VerifyAfter: 30 * time.Second, VerifyAttempts: 6, DriftEvery: 24 * time.Hour},
	}
	if c.Policy.ConsentTTL != want.Policy.ConsentTTL || c.Policy.PhoneRegion != want.Policy.PhoneRegion || c.Policy.WithdrawalDeadline != want.Policy.WithdrawalDeadline ||
		c.Server != want.Server || c.Worker != want.Worker {
		t.Errorf("defaults:\n got %+v %+v %+v\nwant %+v %+v %+v", c.Policy, c.Server, c.Worker, want.Policy, want.Server, want.Worker)
	}
	s := c.Sources[0]
	if s.Tolerance != 5*time.Minute || s.Timezone != "UTC" || s.Profile != "prospect" {
		t.Errorf("source defaults: %+v", s)
	}
	d := c.Destinations[0]
	if !slices.Equal(d.Channels, []string{"email"}) || !slices.Equal(d.Purposes, []string{"marketing"}) || d.Timeout != 10*time.Second {
		t.Errorf("destination defaults: %+v", d)
	}
}

func TestParseSweepEveryFollowsSweepAfter(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want time.Duration
	}{
		{"worker: {sweep_after: 2m}", time.Minute},
		{"worker: {sweep_after: 1s}", time.Second}, // never below 1s
		{"worker: {sweep_after: 1m, sweep_every: 5s}", 5 * time.Second},
	} {
		c, err := Parse([]byte(tc.yaml), vars(nil))
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if c.Worker.SweepEvery != tc.want {
			t.Errorf("%s: sweep_every = %v, want %v", tc.yaml, c.Worker.SweepEvery, tc.want)
		}
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "  \n\t\n", "# nothing but a comment\n", "---\n", "~\n", "{}\n", "sources:\ndestinations: []\n"} {
		c, err := Parse([]byte(in), vars(nil))
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if len(c.Sources) != 0 || len(c.Destinations) != 0 || c.Worker.SweepAfter != 30*time.Second ||
			c.Server.BodyLimit != 1<<20 || c.Policy.PhoneRegion != "FR" {
			t.Errorf("%q: got %+v", in, c)
		}
	}
	if _, err := Parse(nil, nil); err != nil {
		t.Errorf("nil input: %v", err)
	}
}

// TestParseErrors checks that each error names the path of the bad key (and,
// for what the YAML says, the line as written).
func TestParseErrors(t *testing.T) {
	// srcOf is src with another kind (same lines, so the same line numbers).
	srcOf := func(kind, extra string) string {
		return "sources:\n  - name: s1\n    kind: " + kind + "\n    brand: acme\n    secrets: [k1]\n" + extra
	}
	src := func(extra string) string { return srcOf("form", extra) }
	dst := func(extra string) string {
		return "destinations:\n  - name: d1\n    kind: sendgrid\n    brand: acme\n    api_key: key\n" + extra
	}
	for _, tc := range []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{"unknown top-level key", "bogus: 1\n", nil, []string{"config: bogus (line 1): unknown key"}},
		{"unknown key in second source", src("  - name: s2\n    kind: form\n    brand: acme\n    bogus: 1\n"), nil,
			[]string{"sources[1].bogus (line 9): unknown key"}},
		{"unknown key first in its item", "sources:\n  - bogus: 1\n    name: s1\n", nil,
			[]string{"sources[0].bogus (line 2): unknown key"}},
		{"unknown key in a flow mapping", "sources:\n  - {name: s1, kind: form, brand: acme, bogus: 1}\n", nil,
			[]string{"sources[0].bogus (line 2): unknown key"}},
		{"unknown key in a one-line document", "{sources: [{name: a}, {name: b, bogus: 1}]}", nil,
			[]string{"sources[1].bogus (line 1): unknown key"}},
		{"destination has no fields", dst("    fields:\n      email: email\n"), nil,
			[]string{"destinations[0].fields (line 6): unknown key"}},
		{"unknown key in a consent field", src("    fields:\n      consents:\n        - field: a\n          channel: email\n          purpose: marketing\n        - {field: b, bogus: x}\n"), nil,
			[]string{"sources[0].fields.consents[1].bogus (line 11): unknown key"}},
		{"unknown key in a group", srcOf("sendgrid", "    groups:\n      \"12\": {purpose: marketing, colour: red}\n"), nil,
			[]string{"sources[0].groups.12.colour (line 7): unknown key"}},
		{"unknown nested key", "worker:\n  concurency: 3\n", nil, []string{"worker.concurency (line 2): unknown key"}},
		{"several unknown keys", "policy:\n  a: 1\nserver:\n  b: 2\n", nil,
			[]string{"policy.a (line 2): unknown key", "server.b (line 4): unknown key"}},
		{"repeated key", "worker:\n  concurrency: 2\n  concurrency: 3\n", nil,
			[]string{"worker.concurrency (line 3): key repeated (first at line 2)"}},
		{"repeated map key", srcOf("mailchimp", "    lists: {a1: acme, a1: other}\n"), nil,
			[]string{"sources[0].lists.a1 (line 6): key repeated"}},

		{"bad duration", "worker:\n  sweep_after: soon\n", nil, []string{"worker.sweep_after (line 2)", `"soon" is not a duration`}},
		{"duration without unit", "worker: {sweep_after: 30}", nil, []string{"worker.sweep_after (line 1)", "duration"}},
		{"bad duration first in its item", "sources:\n  - tolerance: 5 minutes\n    name: s1\n", nil,
			[]string{"sources[0].tolerance (line 2)", "duration"}},
		{"bad consent_ttl", "policy: {consent_ttl: 3y}", nil, []string{"policy.consent_ttl (line 1)", "duration"}},
		{"bad destination timeout", dst("    timeout: fast\n"), nil, []string{"destinations[0].timeout (line 6)"}},
		{"bad bool", "policy:\n  strict_quality: maybe\n", nil, []string{"policy.strict_quality (line 2)", "true or false"}},
		{"bad number", "server:\n  body_limit: 1MiB\n", nil, []string{"server.body_limit (line 2)", "whole number"}},

		{"list where a mapping belongs", "sources:\n  name: s1\n  kind: form\n", nil,
			[]string{"config: sources (line 2): want a list, got a mapping"}},
		{"mapping where a list belongs", dst("    channels:\n      a: 1\n"), nil,
			[]string{"destinations[0].channels (line 7): want a list, got a mapping"}},
		{"nested sequence in consents", src("    fields:\n      consents:\n        - - a\n"), nil,
			[]string{"sources[0].fields.consents[0] (line 8): want a mapping, got a list"}},
		{"list in a string list", dst("    channels: [email, [sms]]\n"), nil,
			[]string{"destinations[0].channels[1] (line 6): want a single value, got a list"}},
		{"list as a map value", srcOf("mailchimp", "    lists: {a: [1]}\n"), nil, []string{"sources[0].lists.a (line 6): want a single value"}},
		{"scalar source", "sources:\n  - just-a-name\n", nil, []string{"sources[0] (line 2): want a mapping"}},
		{"document is a list", "- a\n- b\n", nil, []string{"config: line 1: want a mapping, got a list"}},
		{"document is a scalar", "hello\n", nil, []string{"line 1: want a mapping"}},
		{"alias", "policy: &p {strict_quality: true}\nworker: *p\n", nil, []string{"worker (line 2): YAML aliases are not supported"}},
		{"syntax error", "sources: [\n", nil, []string{"config: yaml:"}},
		{"tab indentation", "worker:\n\tconcurrency: 2\n", nil, []string{"config: yaml:"}},

		{"bad source kind", src("  - {name: s2, kind: fax, brand: acme}\n"), nil,
			[]string{`sources[1].kind: "fax" is not a source kind`}},
		{"missing source kind", "sources:\n  - {name: s1, brand: acme}\n", nil, []string{`sources[0].kind: "" is not a source kind`}},
		{"bad destination kind", dst("  - {name: d2, kind: smtp, brand: acme, api_key: k}\n"), nil,
			[]string{`destinations[1].kind: "smtp" is not a destination kind`}},
		{"duplicate source name", src("  - {name: s1, kind: form, brand: other}\n"), nil, []string{`sources[1].name: "s1" is used twice`}},
		{"duplicate destination name", dst("  - {name: d1, kind: sendgrid, brand: acme, api_key: k}\n"), nil,
			[]string{`destinations[1].name: "d1" is used twice`}},
		{"upper-case name", "sources:\n  - {name: Signup, kind: form, brand: acme}\n", nil, []string{"sources[0].name", "lower-case"}},
		{"slash in name", "sources:\n  - {name: a/b, kind: form, brand: acme}\n", nil, []string{"sources[0].name"}},
		{"space in name", "sources:\n  - {name: a b, kind: form, brand: acme}\n", nil, []string{"sources[0].name"}},
		{"missing name", "sources:\n  - {kind: form, brand: acme}\n", nil, []string{"sources[0].name"}},
		{"name too long", "sources:\n  - {name: " + strings.Repeat("a", 64) + ", kind: form, brand: acme}\n", nil, []string{"sources[0].name"}},
		{"bad destination name", "destinations:\n  - {name: -d, kind: sendgrid, brand: acme, api_key: k}\n", nil, []string{"destinations[0].name"}},
		{"missing source brand", "sources:\n  - {name: s1, kind: form}\n", nil, []string{"sources[0].brand: is required"}},
		{"missing destination brand", "destinations:\n  - {name: d1, kind: sendgrid, api_key: k}\n", nil, []string{"destinations[0].brand: is required"}},
		{"empty secret", "sources:\n  - {name: s1, kind: form, brand: acme, secrets: [a, \"\"]}\n", nil, []string{"sources[0].secrets[1]: is empty"}},
		{"secret from an empty plain variable", "sources:\n  - name: s1\n    kind: form\n    brand: acme\n    secrets:\n      - ${EMPTY}\n",
			map[string]string{"EMPTY": ""}, []string{"sources[0].secrets[0]: is empty"}},
		{"secret from an empty variable", "sources:\n  - {name: s1, kind: form, brand: acme, secrets: [\"${EMPTY}\"]}\n",
			map[string]string{"EMPTY": ""}, []string{"sources[0].secrets[0]: is empty"}},
		{"missing api key", "destinations:\n  - {name: d1, kind: sendgrid, brand: acme}\n", nil, []string{"destinations[0].api_key: is required"}},
		{"bad lift and rate", "destinations:\n  - {name: d1, kind: sendgrid, brand: acme, api_key: k, lift: always, rate_limit: -1}\n", nil,
			[]string{"destinations[0].lift: \"always\": want never or on_new_opt_in", "destinations[0].rate_limit: must not be negative"}},
		{"mailchimp without its list", "destinations:\n  - {name: d1, kind: mailchimp, brand: acme, api_key: k-us1}\n", nil,
			[]string{"destinations[0].list_id: is required"}},
		{"a vendor key on another kind", "destinations:\n  - {name: d1, kind: sendgrid, brand: acme, api_key: k, list_id: L}\n", nil,
			[]string{"destinations[0].list_id (line 2): unknown key"}},
		{"a vendor key on another source kind", src("    lists: {a1: acme}\n"), nil,
			[]string{"sources[0].lists (line 6): unknown key"}},
		{"unset variable", srcOf("hubspot", "    api_token: ${HUBSPOT_TOKEN}\n"), nil,
			[]string{"config: unset environment variable: HUBSPOT_TOKEN (referenced at sources[0].api_token (line 6))"}},
		{"unset variable in a list", "sources:\n  - name: s1\n    secrets:\n      - ok\n      - \"${SECRET_2}\"\n", nil,
			[]string{"sources[0].secrets[1] (line 5)", "SECRET_2"}},
		{"unset variables named together", "destinations:\n  - {name: d1, base_url: \"${HOST}:${PORT}\"}\n", nil,
			[]string{"config: unset environment variables: HOST, PORT (referenced at destinations[0].base_url (line 2))"}},
		{"bad consent channel", src("    fields:\n      consents:\n        - {field: a, channel: email, purpose: marketing}\n        - {field: b, channel: fax, purpose: marketing}\n"), nil,
			[]string{`sources[0].fields.consents[1].channel: "fax" is not a channel`}},
		{"bad consent purpose", src("    fields:\n      consents:\n        - {field: a, channel: email, purpose: marketting}\n"), nil,
			[]string{`sources[0].fields.consents[0].purpose: "marketting" is not a purpose`}},
		{"consent without field", src("    fields:\n      consents:\n        - {channel: email, purpose: marketing}\n"), nil,
			[]string{"sources[0].fields.consents[0].field: is required"}},
		{"bad signature algorithm", src("    signature: {header: X-Sig, algorithm: md5, encoding: hex}\n"), nil,
			[]string{`sources[0].signature.algorithm: "md5"`}},
		{"bad signature encoding", src("    signature: {header: X-Sig, algorithm: sha512, encoding: base32}\n"), nil,
			[]string{`sources[0].signature.encoding: "base32"`}},
		{"signature without header", src("    signature: {algorithm: sha256, encoding: hex}\n"), nil,
			[]string{"sources[0].signature.header: is required"}},
		{"invalid timezone", src("    timezone: Europe/Pariss\n"), nil, []string{`sources[0].timezone: "Europe/Pariss" is not an IANA time zone`}},
		{"bad profile", src("    profile: vip\n"), nil, []string{`sources[0].profile: "vip" is not a profile`}},
		{"negative tolerance", src("    tolerance: -1m\n"), nil, []string{"sources[0].tolerance: must be positive"}},
		{"bad destination channel", dst("    channels: [email, fax]\n"), nil, []string{`destinations[0].channels[1]: "fax" is not a channel`}},
		{"bad destination purpose", dst("    purposes: [ads]\n"), nil, []string{`destinations[0].purposes[0]: "ads" is not a purpose`}},
		{"bad base url", dst("    base_url: ftp://x\n"), nil, []string{"destinations[0].base_url: must start with http:// or https://"}},
		{"negative timeout", dst("    timeout: -1s\n"), nil, []string{"destinations[0].timeout: must be positive"}},
		{"small body limit", "server: {body_limit: 10}", nil, []string{"server.body_limit: must be at least 1024 bytes"}},
		{"zero concurrency", "worker: {concurrency: -1}", nil, []string{"worker.concurrency"}},
		{"short sweep", "worker: {sweep_after: 10ms}", nil, []string{"worker.sweep_after: must be at least 1s"}},
		{"short sweep_every", "worker: {sweep_every: 10ms}", nil, []string{"worker.sweep_every"}},
		{"negative max_retry", "worker: {max_retry: -2}", nil, []string{"worker.max_retry"}},
		{"negative push_batch", "worker: {push_batch: -2}", nil, []string{"worker.push_batch"}},
		{"zero inbound_batch", "worker: {inbound_batch: -1}", nil, []string{"worker.inbound_batch"}},
		{"huge inbound_batch", "worker: {inbound_batch: 5000}", nil, []string{"worker.inbound_batch"}},
		{"negative push_concurrency", "worker: {push_concurrency: -1}", nil, []string{"worker.push_concurrency"}},
		{"push_linger over 10s", "worker: {push_linger: 11s}", nil, []string{"worker.push_linger"}},
		{"negative circuit_failures", "worker: {circuit_failures: -3}", nil, []string{"worker.circuit_failures"}},
		{"commit_wait over 1s", "server: {commit_wait: 2s}", nil, []string{"server.commit_wait"}},
		{"commit_rows over 10000", "server: {commit_rows: 20000}", nil, []string{"server.commit_rows"}},
		{"negative drain_grace", "server: {drain_grace: -1s}", nil, []string{"server.drain_grace"}},
		{"negative ttl", "policy: {consent_ttl: -1h}", nil, []string{"policy.consent_ttl: must be positive"}},
		{"bad phone region", "policy: {phone_region: France}", nil, []string{`policy.phone_region: "France"`}},
		{"every validation error reported", "sources:\n  - {name: s1, kind: fax}\n", nil,
			[]string{"sources[0].kind", "sources[0].brand: is required", "; "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), vars(tc.env))
			if err == nil {
				t.Fatalf("no error; got %+v", c)
			}
			if c != nil {
				t.Errorf("a config came back with the error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n does not contain %q", err, w)
				}
			}
		})
	}
}

// TestParseExpansion checks that ${VAR} is replaced inside scalars only: a
// value full of YAML syntax stays one string.
func TestParseExpansion(t *testing.T) {
	vals := map[string]string{
		"SPECIAL":  `a: b # c, [d] {e} *f &g !h | > - "i" 'j' %k @l` + "`m`",
		"NEWLINES": "line1\nline2: x\n- item",
		"NESTED":   "${SPECIAL}",
		"HOST":     "http://sandbox:8080",
		"LIMIT":    "2048",
		"BOOL":     "true",
		"DUR":      "45s",
		"NUMERIC":  "0x1F",
		"NULLWORD": "null",
		"TILDE":    "~",
		"EMPTY":    "",
		"DATE":     "2024-01-01",
		"FLOAT":    "1e3",
	}
	in := `
policy:
  strict_quality: ${BOOL}
server:
  body_limit: ${LIMIT}
worker:
  sweep_after: ${DUR}
sources:
  - name: s1
    kind: hubspot
    brand: acme
    secrets:
      - ${SPECIAL}
      - "${NEWLINES}"
      - '${NESTED}'
      - ${NUMERIC}
      - ${NULLWORD}
      - ${TILDE}
      - ${DATE}
      - ${FLOAT}
      - "pre-${LIMIT}-post"
      - ${BOOL}
      - ${LIMIT}
    api_token: ${SPECIAL}
    public_url: ${HOST}/hooks # a comment stays a comment
destinations:
  - {name: d1, kind: sendgrid, brand: acme, api_key: "${LIMIT}", base_url: "${HOST}/brevo"}
`
	c, err := Parse([]byte(in), vars(vals))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Policy.StrictQuality || c.Server.BodyLimit != 2048 || c.Worker.SweepAfter != 45*time.Second {
		t.Errorf("typed expansions: %+v %+v %+v", c.Policy, c.Server, c.Worker)
	}
	s := c.Sources[0]
	want := []string{vals["SPECIAL"], vals["NEWLINES"], "${SPECIAL}", "0x1F", "null", "~", "2024-01-01", "1e3", "pre-2048-post", "true", "2048"}
	if !slices.Equal(s.Secrets, want) {
		t.Errorf("secrets:\n got %q\nwant %q", s.Secrets, want)
	}
	if tok, pub := option(s.Options, "api_token"), option(s.Options, "public_url"); tok != vals["SPECIAL"] || pub != "http://sandbox:8080/hooks" {
		t.Errorf("api_token %q, public_url %q", tok, pub)
	}
	if d := c.Destinations[0]; d.APIKey != "2048" || d.BaseURL != "http://sandbox:8080/brevo" {
		t.Errorf("destination: %+v", d)
	}
}

// A quoted "${VAR}" is a string, as a quoted literal would be.
func TestParseQuotedExpansionStaysString(t *testing.T) {
	_, err := Parse([]byte(`server: {body_limit: "${LIMIT}"}`), vars(map[string]string{"LIMIT": "2048"}))
	if err == nil || !strings.Contains(err.Error(), "server.body_limit") {
		t.Errorf("err = %v", err)
	}
}

// Keys are not expanded: "${X}" as a key is an unknown key, not X's value.
func TestParseKeysNotExpanded(t *testing.T) {
	_, err := Parse([]byte("${KEY}: 1\n"), vars(map[string]string{"KEY": "policy"}))
	if err == nil || !strings.Contains(err.Error(), "${KEY} (line 1): unknown key") {
		t.Errorf("err = %v", err)
	}
}

func TestLoad(t *testing.T) {
	path := t.TempDir() + "/c.yaml"
	if err := os.WriteFile(path, []byte(valid+"policy:\n  phone_region: ${TEST_REGION}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvConfigFile, path)
	t.Setenv("TEST_REGION", "BE")
	t.Setenv("HTTP_ADDR", ":9090")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.PhoneRegion != "BE" || c.Process.HTTPAddr != ":9090" || c.Process.RedisURL != "redis://127.0.0.1:6379/0" {
		t.Errorf("got %+v %+v", c.Policy, c.Process)
	}

	t.Setenv(EnvConfigFile, path+".missing")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), EnvConfigFile) {
		t.Errorf("missing file: err = %v", err)
	}

	t.Setenv(EnvConfigFile, "")
	if c, err := Load(); err != nil || len(c.Sources) != 0 {
		t.Errorf("no file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(exampleFile); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		valid, "", "~", "- a", "a: &x 1\nb: *x\n", "sources: [{name: a, kind: form, brand: b, fields: {consents: [[a]]}}]",
		"worker: {sweep_after: ${X}}", "server: {body_limit: ${Y}}", "{", "? [a]\n: b", "sources:\n  - !!binary aGVsbG8=\n",
		"policy: {consent_ttl: 9999999999999999h}", "sources: {a: 1}", "\xff\xfe", "a: \x00",
	} {
		f.Add([]byte(s))
	}
	lookup := vars(map[string]string{"X": "1m", "Y": "a: b", "SANDBOX_URL": "http://x"})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseWith(data, vars(nil), Options{AllowMissingSecrets: true}); err != nil && !strings.HasPrefix(err.Error(), "config: ") {
			t.Fatalf("read-only: error without prefix: %v", err)
		}
		c, err := Parse(data, lookup)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
	})
}

// TestParseProcessOps: the ops listener is on the loopback by default,
// "off" disables it, and a viewer token equal to the admin token (which
// would grant the viewer full access) is refused.
func TestParseProcessOps(t *testing.T) {
	t.Parallel()
	p, err := ParseProcess(map[string]string{})
	if err != nil || p.OpsAddr != "127.0.0.1:9090" || p.HTTPAddr != ":8080" || p.AdminToken != "" {
		t.Errorf("defaults: %+v, %v", p, err)
	}
	if p, err := ParseProcess(map[string]string{"OPS_ADDR": "off"}); err != nil || p.OpsAddr != "" {
		t.Errorf("OPS_ADDR=off: %q, %v", p.OpsAddr, err)
	}
	if p, err := ParseProcess(map[string]string{"OPS_ADDR": ":9100", "CONSENTSYNC_VIEWER_TOKEN": "v", "CONSENTSYNC_ADMIN_TOKEN": "a"}); err != nil || p.OpsAddr != ":9100" || p.ViewerToken != "v" {
		t.Errorf("set: %+v, %v", p, err)
	}
	_, err = ParseProcess(map[string]string{"CONSENTSYNC_VIEWER_TOKEN": "same", "CONSENTSYNC_ADMIN_TOKEN": "same"})
	if err == nil || !strings.Contains(err.Error(), "CONSENTSYNC_VIEWER_TOKEN equals CONSENTSYNC_ADMIN_TOKEN") || strings.Contains(err.Error(), "same") {
		t.Errorf("equal tokens: %v (must be refused without printing the token)", err)
	}
}
