package pages

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"

	"github.com/consentsync/consentsync/consent"
)

// Errors of the form parsers (HTTP 400).
var (
	ErrNotOneClick = errors.New("pages: body is not List-Unsubscribe=One-Click")
	ErrBadForm     = errors.New("pages: unreadable form")
)

// maxFormBody bounds every page's POST body, in bytes.
const maxFormBody = 16 << 10

// ParseOneClick checks a one-click unsubscribe body (RFC 8058 §3.1): the
// key/value pair List-Unsubscribe=One-Click, form-encoded
// (application/x-www-form-urlencoded, what Gmail and Yahoo send) or
// multipart/form-data (which the RFC also allows). Other fields are
// ignored. Errors wrap ErrNotOneClick.
func ParseOneClick(contentType string, body []byte) error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("%w: content type %q", ErrNotOneClick, contentType)
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNotOneClick, err)
		}
		for _, v := range q["List-Unsubscribe"] {
			if v == "One-Click" {
				return nil
			}
		}
	case "multipart/form-data":
		if params["boundary"] == "" {
			return fmt.Errorf("%w: multipart without boundary", ErrNotOneClick)
		}
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for i := 0; i < 32; i++ {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			if p.FormName() == "List-Unsubscribe" {
				v, _ := io.ReadAll(io.LimitReader(p, 64))
				if string(v) == "One-Click" {
					return nil
				}
			}
		}
	default:
		return fmt.Errorf("%w: content type %q", ErrNotOneClick, mt)
	}
	return ErrNotOneClick
}

// PrefForm is a submitted preference-centre (or confirmation) form.
type PrefForm struct {
	CSRF string
	Lang string
	// All: "withdraw from every brand" was ticked.
	All bool
	// Shown are the toggles the page showed (hidden "shown" fields), On
	// those ticked ("on" fields); a key ticked but not shown is ignored.
	Shown []consent.Key
	On    map[consent.Key]bool
}

// maxToggles bounds the keys one form may carry.
const maxToggles = 200

// EncodeKey is a toggle's form value: "channel:purpose:brand" (the brand
// last: it may hold ':').
func EncodeKey(k consent.Key) string {
	return string(k.Channel) + ":" + string(k.Purpose) + ":" + k.Brand
}

// DecodeKey reads EncodeKey's form; the channel and purpose must be known
// and the brand 1–200 bytes of valid text.
func DecodeKey(s string) (consent.Key, error) {
	ch, rest, ok1 := strings.Cut(s, ":")
	pu, brand, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return consent.Key{}, fmt.Errorf("%w: toggle %q", ErrBadForm, s)
	}
	c, err := consent.ParseChannel(ch)
	if err != nil {
		return consent.Key{}, fmt.Errorf("%w: %v", ErrBadForm, err)
	}
	p, err := consent.ParsePurpose(pu)
	if err != nil {
		return consent.Key{}, fmt.Errorf("%w: %v", ErrBadForm, err)
	}
	if brand == "" || len(brand) > 200 || consent.CleanText(brand, 200) != brand {
		return consent.Key{}, fmt.Errorf("%w: brand of toggle", ErrBadForm)
	}
	return consent.Key{Channel: c, Brand: brand, Purpose: p}, nil
}

// ParsePreferences reads a form-encoded preference-centre body: csrf,
// lang, all (any non-empty value ticks it), shown and on (toggle keys,
// EncodeKey). Errors wrap ErrBadForm: an unreadable body, more than 200
// toggles, a key that does not decode.
func ParsePreferences(body []byte) (PrefForm, error) {
	if len(body) > maxFormBody {
		return PrefForm{}, fmt.Errorf("%w: body over %d bytes", ErrBadForm, maxFormBody)
	}
	q, err := url.ParseQuery(string(body))
	if err != nil {
		return PrefForm{}, fmt.Errorf("%w: %v", ErrBadForm, err)
	}
	f := PrefForm{CSRF: q.Get("csrf"), Lang: q.Get("lang"), All: q.Get("all") != "", On: map[consent.Key]bool{}}
	if len(q["shown"])+len(q["on"]) > maxToggles {
		return PrefForm{}, fmt.Errorf("%w: more than %d toggles", ErrBadForm, maxToggles)
	}
	seen := map[consent.Key]bool{}
	for _, v := range q["shown"] {
		k, err := DecodeKey(v)
		if err != nil {
			return PrefForm{}, err
		}
		if !seen[k] {
			seen[k] = true
			f.Shown = append(f.Shown, k)
		}
	}
	for _, v := range q["on"] {
		k, err := DecodeKey(v)
		if err != nil {
			return PrefForm{}, err
		}
		if seen[k] {
			f.On[k] = true
		}
	}
	return f, nil
}
