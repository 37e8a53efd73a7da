package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/consentsync/consentsync/connectors"
)

// Lookup returns the value found at a dotted path ("hidden.consent_version",
// "data.Email"), and whether the path exists. Values are what a JSON decoder
// with UseNumber yields (string, json.Number, bool, nil, []any,
// map[string]any) or, for form posts, string and []string. A present path
// with a null value returns (nil, true).
type Lookup func(path string) (any, bool)

// DecodeJSON decodes one JSON value with numbers kept as json.Number (huge
// numbers survive). Trailing data other than white space is an error.
// Invalid UTF-8 inside strings is replaced by U+FFFD by encoding/json; a
// leading UTF-8 byte order mark is ignored.
func DecodeJSON(body []byte) (any, error) {
	// RFC 8259 §8.1: a parser may ignore a leading byte order mark, which
	// some senders write (.NET's UTF8Encoding(true)); signatures were
	// checked on the raw bytes, mark included.
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// DecodeObject decodes body as one JSON object, as DecodeJSON does. Errors
// wrap connectors.ErrMalformed: "JSON: " and the decoder's error, or "want
// a JSON object".
func DecodeObject(body []byte) (map[string]any, error) {
	v, err := DecodeJSON(body)
	if err != nil {
		return nil, connectors.Malformed("JSON: %v", err)
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, connectors.Malformed("want a JSON object")
	}
	return root, nil
}

// JSON returns a Lookup over a decoded JSON value. A path is split at dots;
// a segment indexes an object by key or an array by decimal index. Keys that
// themselves contain dots are found too (the longest key matching wins at
// each level), so a Webflow label such as "Mr. or Mrs." can be mapped.
func JSON(root any) Lookup {
	return func(path string) (any, bool) {
		if path == "" {
			return nil, false
		}
		return walk(root, path, 0)
	}
}

// maxDepth bounds the path walk (paths come from config, so this is only a
// guard).
const maxDepth = 32

func walk(v any, path string, depth int) (any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	switch x := v.(type) {
	case map[string]any:
		if val, ok := x[path]; ok {
			return val, true
		}
		for i := len(path) - 1; i > 0; i-- {
			if path[i] != '.' {
				continue
			}
			if child, ok := x[path[:i]]; ok {
				if val, ok := walk(child, path[i+1:], depth+1); ok {
					return val, true
				}
			}
		}
	case []any:
		seg, rest, more := strings.Cut(path, ".")
		i, err := strconv.Atoi(seg)
		if err != nil || i < 0 || i >= len(x) {
			return nil, false
		}
		if !more {
			return x[i], true
		}
		return walk(x[i], rest, depth+1)
	}
	return nil, false
}

// Values returns a Lookup over form fields (application/x-www-form-urlencoded
// or multipart/form-data). A path is first looked up as a field name, then in
// PHP bracket form ("data.email" → "data[email]"), then with a trailing "[]"
// (checkbox groups). One value yields a string, several yield []string.
func Values(v url.Values) Lookup {
	return func(path string) (any, bool) {
		if path == "" {
			return nil, false
		}
		for _, k := range formKeys(path) {
			if vals, ok := v[k]; ok {
				switch len(vals) {
				case 0:
					return nil, true
				case 1:
					return vals[0], true
				}
				return vals, true
			}
		}
		return nil, false
	}
}

func formKeys(path string) []string {
	keys := []string{path}
	if strings.Contains(path, ".") {
		parts := strings.Split(path, ".")
		var b strings.Builder
		b.WriteString(parts[0])
		for _, p := range parts[1:] {
			b.WriteString("[" + p + "]")
		}
		keys = append(keys, b.String())
	}
	if !strings.HasSuffix(path, "[]") {
		keys = append(keys, path+"[]")
	}
	return keys
}

// Chain returns a Lookup that asks each of lookups in turn and answers with
// the first that has the path.
func Chain(lookups ...Lookup) Lookup {
	return func(path string) (any, bool) {
		for _, l := range lookups {
			if l == nil {
				continue
			}
			if v, ok := l(path); ok {
				return v, true
			}
		}
		return nil, false
	}
}

// Text renders a scalar value as text: strings as they are, json.Number in
// its literal form, float64 without exponent when integral, bools as
// "true"/"false", and a one-element list as its element. It returns false for
// nil, objects, empty or longer lists. Invalid UTF-8 is dropped.
func Text(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return strings.ToValidUTF8(x, ""), true
	case json.Number:
		return x.String(), true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", false
		}
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case bool:
		return strconv.FormatBool(x), true
	case []string:
		if len(x) == 1 {
			return strings.ToValidUTF8(x[0], ""), true
		}
	case []any:
		if len(x) == 1 {
			return Text(x[0])
		}
	}
	return "", false
}

// evidenceMax bounds one evidence string, in bytes.
const evidenceMax = 1024
