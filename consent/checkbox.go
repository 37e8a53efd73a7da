package consent

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Checkbox is what a form's consent field says.
type Checkbox int

// Checkbox answers. Absent (missing, null, "" or an empty array) and Unticked
// grant nothing and withdraw nothing: absence is not withdrawal
// (docs/rules.md; "Absence is not withdrawal" in docs/design.md §1). Ambiguous
// is recorded and never applied (CNIL criterion "unambiguous").
const (
	CheckboxAbsent Checkbox = iota
	CheckboxTicked
	CheckboxUnticked
	CheckboxAmbiguous
)

func (c Checkbox) String() string {
	switch c {
	case CheckboxTicked:
		return "ticked"
	case CheckboxUnticked:
		return "unticked"
	case CheckboxAmbiguous:
		return "ambiguous"
	}
	return "absent"
}

// ParseCheckbox reads a consent field's value as decoded from JSON (bool,
// float64, json.Number, string, []any, nil) or from a form post (string).
//
//	ticked:    true, 1, "1", "on", "yes", "true", "checked", "y", an array
//	           with a non-empty item that is not an unticked value, a
//	           form's hidden unticked value then the box ("0", "1")
//	unticked:  false, 0, "0", "off", "no", "false", "unchecked", "n", an
//	           array of unticked values
//	absent:    missing (nil), "", whitespace, an array of empty items
//	ambiguous: anything else ("maybe", 2, an object, free text)
//
// Strings compare case-insensitively after trimming. The second result is the
// raw value rendered as text, for evidence (at most 200 bytes).
// Source: docs/wire-formats.md, "Checkbox values".
func ParseCheckbox(v any) (Checkbox, string) {
	switch x := v.(type) {
	case nil:
		return CheckboxAbsent, ""
	case bool:
		if x {
			return CheckboxTicked, "true"
		}
		return CheckboxUnticked, "false"
	case float64:
		return checkboxNumber(x), trimEvidence(fmt.Sprint(x))
	case int:
		return checkboxNumber(float64(x)), fmt.Sprint(x)
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return CheckboxAmbiguous, trimEvidence(x.String())
		}
		return checkboxNumber(f), trimEvidence(x.String())
	case string:
		return checkboxString(x), trimEvidence(x)
	case []string:
		items := make([]any, len(x))
		for i, e := range x {
			items[i] = e
		}
		return checkboxList(items)
	case []any:
		return checkboxList(x)
	}
	return CheckboxAmbiguous, trimEvidence(fmt.Sprintf("%v", v))
}

// checkboxList reads a checkbox group or a repeated form field (WPForms
// sends ["I agree"], a form post newsletter=&newsletter=on): empty items
// (nil, "", [], blank) are ignored; none left is absent; all left
// explicitly unticked (false, "0", "no" ...) is unticked; all left ticked
// values or labels ("on", "I agree") is ticked. A mix of ticked and
// unticked items, a number other than 0 or 1, or a nested list or object
// is ambiguous: the answer cannot be told — except the hidden-field idiom
// of form frameworks (Rails' check_box, Laravel, Symfony): a hidden
// unticked value posted before the box ("0" then "1"), so that an
// unticked box still sends one; exactly one unticked text then one
// ticked text reads ticked, as the framework reads the last value.
func checkboxList(items []any) (Checkbox, string) {
	parts := make([]string, 0, len(items))
	var order []Checkbox // non-empty text items, in order
	texts := true
	ticked, unticked := 0, 0
	for _, e := range items {
		switch e.(type) {
		case []any, []string, map[string]any:
			return CheckboxAmbiguous, trimEvidence(fmt.Sprint(items...))
		case float64, int, json.Number:
			if c, _ := ParseCheckbox(e); c == CheckboxAmbiguous {
				return CheckboxAmbiguous, trimEvidence(fmt.Sprint(items...))
			}
		}
		c, text := ParseCheckbox(e)
		if c != CheckboxAbsent {
			order = append(order, c)
			if _, ok := e.(string); !ok {
				texts = false
			}
		}
		switch c {
		case CheckboxAbsent:
			continue
		case CheckboxUnticked:
			unticked++
		default: // ticked, or a label (free text reads ambiguous alone)
			ticked++
		}
		parts = append(parts, text)
	}
	evidence := trimEvidence(strings.Join(parts, ", "))
	switch {
	case ticked+unticked == 0:
		return CheckboxAbsent, ""
	case texts && len(order) == 2 && order[0] == CheckboxUnticked && order[1] == CheckboxTicked:
		return CheckboxTicked, evidence // the hidden-field idiom
	case ticked > 0 && unticked > 0:
		return CheckboxAmbiguous, evidence
	case ticked == 0:
		return CheckboxUnticked, evidence
	}
	return CheckboxTicked, evidence
}

func checkboxNumber(f float64) Checkbox {
	switch {
	case f == 1:
		return CheckboxTicked
	case f == 0:
		return CheckboxUnticked
	}
	return CheckboxAmbiguous
}

func checkboxString(s string) Checkbox {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return CheckboxAbsent
	case "1", "on", "yes", "true", "checked", "y":
		return CheckboxTicked
	case "0", "off", "no", "false", "unchecked", "n":
		return CheckboxUnticked
	}
	return CheckboxAmbiguous
}

func trimEvidence(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
