package consent

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseCheckbox(t *testing.T) {
	for _, tc := range []struct {
		in       any
		want     Checkbox
		evidence string
	}{
		// ticked
		{true, CheckboxTicked, "true"},
		{1, CheckboxTicked, "1"},
		{float64(1), CheckboxTicked, "1"},
		{json.Number("1"), CheckboxTicked, "1"},
		{json.Number("1.0"), CheckboxTicked, "1.0"},
		{"1", CheckboxTicked, "1"},
		{"on", CheckboxTicked, "on"},
		{"yes", CheckboxTicked, "yes"},
		{"true", CheckboxTicked, "true"},
		{"checked", CheckboxTicked, "checked"},
		{"y", CheckboxTicked, "y"},
		{"ON", CheckboxTicked, "ON"},
		{" Yes ", CheckboxTicked, " Yes "},
		{"\tTRUE\n", CheckboxTicked, "\tTRUE\n"},
		{"Checked", CheckboxTicked, "Checked"},
		{[]any{"I agree"}, CheckboxTicked, "I agree"},
		{[]any{"Email", "SMS"}, CheckboxTicked, "Email, SMS"},
		{[]string{"I agree"}, CheckboxTicked, "I agree"},
		{[]any{false}, CheckboxUnticked, "false"}, // an array of unticked values
		{[]any{"", nil}, CheckboxAbsent, ""},      // a repeated empty form field is no answer
		{[]string{"", ""}, CheckboxAbsent, ""},
		{[]string{"", "on"}, CheckboxTicked, "on"},
		// The hidden-field idiom (Rails, Laravel, Symfony): a hidden "0"
		// posted before the ticked box.
		{[]string{"0", "1"}, CheckboxTicked, "0, 1"},
		{[]any{"off", "on"}, CheckboxTicked, "off, on"},
		{[]string{"0", "", "1"}, CheckboxTicked, "0, 1"},
		// Anything else mixed stays ambiguous.
		{[]string{"1", "0"}, CheckboxAmbiguous, "1, 0"},
		{[]string{"0", "1", "1"}, CheckboxAmbiguous, "0, 1, 1"},
		{[]string{"0", "0", "1"}, CheckboxAmbiguous, "0, 0, 1"},
		{[]any{false, true}, CheckboxAmbiguous, "false, true"},
		{[]any{"no", "I agree"}, CheckboxAmbiguous, "no, I agree"},
		{[]any{[]any{}}, CheckboxAmbiguous, "[]"},

		// unticked
		{false, CheckboxUnticked, "false"},
		{0, CheckboxUnticked, "0"},
		{float64(0), CheckboxUnticked, "0"},
		{math.Copysign(0, -1), CheckboxUnticked, "-0"},
		{json.Number("0"), CheckboxUnticked, "0"},
		{"0", CheckboxUnticked, "0"},
		{"off", CheckboxUnticked, "off"},
		{"no", CheckboxUnticked, "no"},
		{"false", CheckboxUnticked, "false"},
		{"unchecked", CheckboxUnticked, "unchecked"},
		{"n", CheckboxUnticked, "n"},
		{" NO ", CheckboxUnticked, " NO "},
		{"False", CheckboxUnticked, "False"},

		// absent
		{nil, CheckboxAbsent, ""},
		{"", CheckboxAbsent, ""},
		{"  ", CheckboxAbsent, "  "},
		{"\t\n", CheckboxAbsent, "\t\n"},
		{[]any{}, CheckboxAbsent, ""},
		{[]string{}, CheckboxAbsent, ""},
		{[]string(nil), CheckboxAbsent, ""},

		// ambiguous
		{"maybe", CheckboxAmbiguous, "maybe"},
		{"I agree", CheckboxAmbiguous, "I agree"},
		{"tru", CheckboxAmbiguous, "tru"},
		{"01", CheckboxAmbiguous, "01"},
		{"1.0", CheckboxAmbiguous, "1.0"},
		{"oui", CheckboxAmbiguous, "oui"},
		{"null", CheckboxAmbiguous, "null"},
		{2, CheckboxAmbiguous, "2"},
		{-1, CheckboxAmbiguous, "-1"},
		{float64(2), CheckboxAmbiguous, "2"},
		{0.5, CheckboxAmbiguous, "0.5"},
		{math.NaN(), CheckboxAmbiguous, "NaN"},
		{math.Inf(1), CheckboxAmbiguous, "+Inf"},
		{json.Number("2"), CheckboxAmbiguous, "2"},
		{json.Number("-1"), CheckboxAmbiguous, "-1"},
		{json.Number("0.5"), CheckboxAmbiguous, "0.5"},
		{json.Number("abc"), CheckboxAmbiguous, "abc"},
		{json.Number("1e999"), CheckboxAmbiguous, "1e999"},
		{map[string]any{"a": 1.0}, CheckboxAmbiguous, "map[a:1]"},
		{map[string]any{}, CheckboxAmbiguous, "map[]"},
		{int64(1), CheckboxAmbiguous, "1"}, // not a type JSON or a form produces
		{struct{}{}, CheckboxAmbiguous, "{}"},
	} {
		got, ev := ParseCheckbox(tc.in)
		if got != tc.want || ev != tc.evidence {
			t.Errorf("ParseCheckbox(%#v) = %v, %q; want %v, %q", tc.in, got, ev, tc.want, tc.evidence)
		}
	}
}

// Values decoded by encoding/json reach ParseCheckbox as float64, bool,
// string, []any, map[string]any or nil.
func TestParseCheckboxFromJSON(t *testing.T) {
	for _, tc := range []struct {
		json string
		want Checkbox
	}{
		{`true`, CheckboxTicked}, {`1`, CheckboxTicked}, {`"1"`, CheckboxTicked}, {`["x"]`, CheckboxTicked},
		{`false`, CheckboxUnticked}, {`0`, CheckboxUnticked}, {`"off"`, CheckboxUnticked},
		{`null`, CheckboxAbsent}, {`""`, CheckboxAbsent}, {`[]`, CheckboxAbsent},
		{`2`, CheckboxAmbiguous}, {`{}`, CheckboxAmbiguous}, {`"maybe"`, CheckboxAmbiguous},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.json), &v); err != nil {
			t.Fatal(err)
		}
		if got, _ := ParseCheckbox(v); got != tc.want {
			t.Errorf("ParseCheckbox(%s) = %v, want %v", tc.json, got, tc.want)
		}
	}
}

func TestParseCheckboxEvidenceBounded(t *testing.T) {
	for _, in := range []any{
		strings.Repeat("a", 1000),
		strings.Repeat("é", 300), // the cut lands inside a rune
		strings.Repeat("€", 300),
		[]any{strings.Repeat("x", 150), strings.Repeat("y", 150)},
		json.Number(strings.Repeat("9", 500)),
		strings.Repeat("\x80", 300), // no rune start anywhere
	} {
		c, ev := ParseCheckbox(in)
		if c != CheckboxAmbiguous && c != CheckboxTicked {
			t.Errorf("long value: %v", c)
		}
		if len(ev) > 200 {
			t.Errorf("evidence is %d bytes", len(ev))
		}
		if s, ok := in.(string); ok && utf8.ValidString(s) && !utf8.ValidString(ev) {
			t.Errorf("evidence cut inside a rune: %q", ev[len(ev)-4:])
		}
	}
}

func TestCheckboxString(t *testing.T) {
	for c, want := range map[Checkbox]string{
		CheckboxAbsent: "absent", CheckboxTicked: "ticked", CheckboxUnticked: "unticked", CheckboxAmbiguous: "ambiguous", Checkbox(42): "absent",
	} {
		if got := c.String(); got != want {
			t.Errorf("Checkbox(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}

func FuzzParseCheckbox(f *testing.F) {
	for _, s := range []string{"1", "on", "yes", "true", "checked", "y", "0", "off", "no", "false", "unchecked", "n",
		"", "  ", "maybe", "ÖN", "\xff", "\x00", strings.Repeat("é", 150)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []any{s, json.Number(s), []any{s}, []string{s}, map[string]any{s: s}} {
			c, ev := ParseCheckbox(v)
			if c < CheckboxAbsent || c > CheckboxAmbiguous {
				t.Fatalf("ParseCheckbox(%#v) = %d", v, c)
			}
			if len(ev) > 200 {
				t.Fatalf("ParseCheckbox(%#v): evidence of %d bytes", v, len(ev))
			}
			if utf8.ValidString(s) && !utf8.ValidString(ev) {
				t.Fatalf("ParseCheckbox(%#v): evidence %q is not UTF-8", v, ev)
			}
		}
		c, ev := ParseCheckbox(s)
		if ev != s && len(s) <= 200 {
			t.Fatalf("ParseCheckbox(%q): evidence %q is not the value as sent", s, ev)
		}
		if strings.TrimSpace(s) == "" && c != CheckboxAbsent {
			t.Fatalf("ParseCheckbox(%q) = %v, want absent", s, c)
		}
		// Surrounding space never changes the answer, nor does case (for
		// ASCII, where upper- and lower-casing round-trip).
		if c2, _ := ParseCheckbox(" " + s + "\t"); c2 != c {
			t.Fatalf("ParseCheckbox(%q) = %v but padded %v", s, c, c2)
		}
		if isASCII(s) {
			if c2, _ := ParseCheckbox(strings.ToUpper(s)); c2 != c {
				t.Fatalf("ParseCheckbox(%q) = %v but upper-cased %v", s, c, c2)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func TestCheckboxListsMixed(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want Checkbox
	}{
		{[]any{"on", "off"}, CheckboxAmbiguous},
		{[]any{"no", "maybe"}, CheckboxAmbiguous},
		{[]any{false, "x"}, CheckboxAmbiguous},
		{[]any{2.0}, CheckboxAmbiguous},
		{[]string{"I agree"}, CheckboxTicked},
		{[]any{"I agree", ""}, CheckboxTicked},
		{[]any{"no", false}, CheckboxUnticked},
	} {
		if got, _ := ParseCheckbox(tc.in); got != tc.want {
			t.Errorf("ParseCheckbox(%#v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
