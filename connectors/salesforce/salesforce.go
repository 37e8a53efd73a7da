// Package salesforce receives Salesforce outbound messages (kind
// "salesforce").
//
// Wire format (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_understanding.htm):
// a SOAP 1.1 envelope, UTF-8,
//
//	<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
//	 <soapenv:Body>
//	  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
//	   <OrganizationId>00D...</OrganizationId> <ActionId>04k...</ActionId>
//	   <Notification>                       (1 to 100 of them)
//	    <Id>04l...</Id>
//	    <sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
//	     <sf:Id>003...</sf:Id> <sf:Email>...</sf:Email>
//	     <sf:HasOptedOutOfEmail>true</sf:HasOptedOutOfEmail>
//	     <sf:LastModifiedDate>2025-11-20T10:50:00.000Z</sf:LastModifiedDate>
//	    </sObject>
//	   </Notification>
//	  </notifications>
//	 </soapenv:Body>
//	</soapenv:Envelope>
//
// Elements are matched by local name, whatever their namespace or prefix
// (Contact and Lead use the same field names). Salesforce signs nothing: the
// only check in the message is the OrganizationId (not a secret: keep the
// receiver behind TLS and, where possible, Salesforce's published IP
// ranges). Salesforce retries a message it gets no Ack for during 24 hours,
// so every stored delivery, duplicates included, is answered with the SOAP
// Ack (see Respond).
package salesforce

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// AckResponse is the SOAP answer Salesforce expects once a message is
// stored; without it the message is re-sent for 24 hours.
const AckResponse = `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>`

// Limits of the XML reader. A real message is about 1 KiB per notification
// and 6 levels deep; the body itself is bounded by server.body_limit.
// Salesforce puts at most MaxNotifications Notification elements in one
// message: a message with more is not from Salesforce and is refused as
// malformed.
const (
	MaxDepth         = 32
	MaxElements      = 50_000
	MaxNotifications = 100
)

// Source verifies and parses one Salesforce org's outbound messages.
type Source struct {
	cfg    config.Source
	orgIDs []string
}

var (
	_ connectors.Source    = (*Source)(nil)
	_ connectors.Responder = (*Source)(nil)
)

// SourceOptions are a Salesforce source's own keys.
type SourceOptions struct {
	// OrganizationID is the OrganizationId (15 or 18 characters) outbound
	// messages must carry; when empty, every entry of secrets is one
	// (several allow a sandbox and a production org on one URL).
	OrganizationID string `yaml:"organization_id"`
}

// NewSource builds a Salesforce source. The expected OrganizationId is
// organization_id (SourceOptions.OrganizationID, from cfg.Options) when set,
// else every entry of cfg.Secrets (several allow a sandbox and production
// org on one URL). A 15-character id matches its 18-character form.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	var ids []string
	if org := config.OptionsOf[SourceOptions](cfg.Options).OrganizationID; org != "" {
		ids = []string{org}
	} else {
		if len(cfg.Secrets) == 0 {
			return nil, errors.New("organization_id: required (or secrets: at least one secret, the expected OrganizationId)")
		}
		if err := connectors.CheckSecrets(cfg.Secrets, ""); err != nil {
			return nil, err
		}
		ids = cfg.Secrets
	}
	if cfg.Brand == "" {
		return nil, errors.New("brand: is required")
	}
	return &Source{cfg: cfg, orgIDs: ids}, nil
}

// Verify reads the message's OrganizationId and compares it, in constant
// time, with the expected id(s). Outbound messages carry no timestamp: now
// is unused. Errors wrap connectors.ErrUnauthorized; when the XML cannot be
// read at all (not well-formed, a DTD, a non-UTF-8 encoding, too deep, more
// than MaxNotifications notifications) the error also wraps
// connectors.ErrMalformed, which the receiver answers 400 (it checks
// ErrMalformed before ErrUnauthorized).
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	if r == nil {
		return connectors.Unauthorized("no request")
	}
	msg, err := decode(r.Body)
	if err != nil {
		return fmt.Errorf("%w: cannot read OrganizationId: %w", connectors.ErrUnauthorized, err)
	}
	got := strings.TrimSpace(msg.OrganizationID)
	if got == "" {
		return connectors.Unauthorized("no OrganizationId")
	}
	ok := connectors.AnySecret(s.orgIDs, func(id string) bool {
		return sameOrg(got, strings.TrimSpace(id))
	})
	if !ok {
		return connectors.Unauthorized("OrganizationId is not the configured one")
	}
	return nil
}

// Parse turns one outbound message into a Batch. For each Notification's
// sObject (Contact, Lead or any object with these fields):
//
//	HasOptedOutOfEmail true   withdrawal of cfg.Brand's email marketing
//	HasOptedOutOfEmail false  skipped: the field being false is not an express opt-in
//	missing Email / flag / date  skipped
//
// occurred_at is the sObject's LastModifiedDate (else SystemModstamp), UTC:
// a message carries the record's latest state only; without either (the
// outbound message does not send them) it is the arrival time. Evidence.EventID is the
// Notification Id, Evidence.Field "<Type>.HasOptedOutOfEmail". DedupKey is
// the hex SHA-256 of the sorted Notification Ids (Salesforce re-sends the
// same ids on retry). Unreadable XML, or more than MaxNotifications
// Notification elements, returns an error wrapping connectors.ErrMalformed.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	if r == nil {
		return nil, connectors.Malformed("no request")
	}
	msg, err := decode(r.Body)
	if err != nil {
		return nil, err
	}
	b := &connectors.Batch{}
	var ids []string
	if len(msg.Notifications) == 0 {
		b.Skipped = append(b.Skipped, "no Notification")
	}
	for i, n := range msg.Notifications {
		label := fmt.Sprintf("notification %d", i+1)
		if n.ID != "" {
			ids = append(ids, n.ID)
		}
		if n.Object == nil {
			b.Skipped = append(b.Skipped, label+": no sObject")
			continue
		}
		f := n.Object.Fields
		email := f["Email"]
		if strings.TrimSpace(email) != "" {
			b.Named = append(b.Named, consent.Subject{Email: email}) // whatever the record says
		}
		if strings.TrimSpace(email) == "" {
			b.Skipped = append(b.Skipped, label+": no Email")
			continue
		}
		flag, ok := f["HasOptedOutOfEmail"]
		if !ok {
			b.Skipped = append(b.Skipped, label+": no HasOptedOutOfEmail field")
			continue
		}
		switch strings.ToLower(strings.TrimSpace(flag)) {
		case "true", "1":
		case "false", "0":
			b.Skipped = append(b.Skipped, label+": HasOptedOutOfEmail false is not an express opt-in")
			continue
		default:
			b.Skipped = append(b.Skipped, label+": HasOptedOutOfEmail is not a boolean")
			continue
		}
		at, ok := connectors.ParseRFC3339(f["LastModifiedDate"])
		if !ok || !connectors.InYearRange(at) {
			at, ok = connectors.ParseRFC3339(f["SystemModstamp"])
			ok = ok && connectors.InYearRange(at)
		}
		switch {
		case !ok && !r.ReceivedAt.IsZero():
			// A withdrawal is never dropped for a bad date (an outbound
			// message configured without LastModifiedDate among its fields):
			// it is dated when it reached us.
			at = r.ReceivedAt.UTC()
			b.Skipped = append(b.Skipped, label+": no readable LastModifiedDate: dated at arrival")
		case !ok:
			b.Skipped = append(b.Skipped, label+": no readable LastModifiedDate")
			continue
		}
		field := "HasOptedOutOfEmail"
		if n.Object.Type != "" {
			field = n.Object.Type + "." + field
		}
		b.Signals = append(b.Signals, connectors.EmailWithdrawal(s.cfg, email, at, consent.Evidence{
			EventID: n.ID,
			Event:   "HasOptedOutOfEmail",
			Field:   field,
		}))
	}
	b.DedupKey = connectors.HashKeys(slices.Compact(slices.Sorted(slices.Values(ids))))
	return b, nil
}

// Respond answers a stored delivery, new or duplicate, with HTTP 200 and the
// SOAP Ack (AckResponse), so Salesforce stops re-sending it.
func (s *Source) Respond(w http.ResponseWriter, id string, duplicate bool) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, AckResponse)
}

// message is what this package reads from an outbound message.
type message struct {
	OrganizationID string
	ActionID       string
	Notifications  []notification
}

type notification struct {
	ID     string
	Object *sObject
}

type sObject struct {
	Type   string            // from xsi:type, prefix dropped ("Contact")
	Fields map[string]string // local name -> trimmed text (first occurrence)
}

// element is a node of the bounded tree decode builds.
type element struct {
	local    string
	attrs    []xml.Attr
	text     strings.Builder
	children []*element
}

func (e *element) child(local string) *element {
	for _, c := range e.children {
		if c.local == local {
			return c
		}
	}
	return nil
}

func (e *element) childText(local string) string {
	if c := e.child(local); c != nil {
		return strings.TrimSpace(c.text.String())
	}
	return ""
}

// decode reads an outbound message with encoding/xml in strict mode, by
// local names. It never expands entities beyond XML's five predefined ones
// (an undefined entity is an error; a DOCTYPE, and so any entity
// definition, is refused outright, as SOAP 1.1 forbids DTDs), refuses
// encodings other than UTF-8, bounds depth and element count, and refuses
// more than MaxNotifications Notification elements. Errors wrap
// connectors.ErrMalformed.
func decode(body []byte) (*message, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, connectors.Malformed("empty body")
	}
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	var charset string
	dec.CharsetReader = func(label string, _ io.Reader) (io.Reader, error) {
		charset = label
		return nil, errors.New("only UTF-8 is accepted")
	}
	var (
		root  *element
		stack []*element
		count int
	)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			if charset != "" {
				return nil, connectors.Malformed("XML declares encoding %q: only UTF-8 is accepted", connectors.Clip(charset, maxQuoted))
			}
			return nil, connectors.Malformed("%s", clipErr(err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			count++
			if count > MaxElements {
				return nil, connectors.Malformed("XML: more than %d elements", MaxElements)
			}
			if len(stack) >= MaxDepth {
				return nil, connectors.Malformed("XML: nested deeper than %d", MaxDepth)
			}
			e := &element{local: t.Name.Local, attrs: t.Attr}
			if len(stack) == 0 {
				if root != nil {
					return nil, connectors.Malformed("XML: more than one root element")
				}
				root = e
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, e)
			}
			stack = append(stack, e)
		case xml.EndElement:
			if len(stack) > 0 { // strict mode already refuses unbalanced tags
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			}
		case xml.Directive:
			return nil, connectors.Malformed("XML: DTDs and other directives are not allowed")
		case xml.ProcInst, xml.Comment:
		}
	}
	if root == nil {
		return nil, connectors.Malformed("XML: no root element")
	}
	n := find(root, "notifications", 0)
	if n == nil {
		return nil, connectors.Malformed("no notifications element")
	}
	msg := &message{
		OrganizationID: n.childText("OrganizationId"),
		ActionID:       n.childText("ActionId"),
	}
	for _, c := range n.children {
		if c.local != "Notification" {
			continue
		}
		if len(msg.Notifications) == MaxNotifications {
			return nil, connectors.Malformed("more than %d Notification elements (Salesforce sends at most %d)", MaxNotifications, MaxNotifications)
		}
		nt := notification{ID: c.childText("Id")}
		if o := c.child("sObject"); o != nil {
			obj := &sObject{Fields: map[string]string{}}
			for _, a := range o.attrs {
				if a.Name.Local == "type" {
					_, typ, found := strings.Cut(a.Value, ":")
					if !found {
						typ = a.Value
					}
					obj.Type = connectors.Clip(strings.TrimSpace(typ), maxQuoted)
				}
			}
			for _, f := range o.children {
				if _, dup := obj.Fields[f.local]; !dup && len(f.children) == 0 {
					obj.Fields[f.local] = strings.TrimSpace(f.text.String())
				}
			}
			nt.Object = obj
		}
		msg.Notifications = append(msg.Notifications, nt)
	}
	return msg, nil
}

// find returns the first element named local, searching at most 4 levels
// down (Envelope > Body > notifications).
func find(e *element, local string, depth int) *element {
	if e.local == local {
		return e
	}
	if depth >= 4 {
		return nil
	}
	for _, c := range e.children {
		if f := find(c, local, depth+1); f != nil {
			return f
		}
	}
	return nil
}

// sameOrg compares two org ids in constant time, case-sensitively. Ids of
// the same length must be equal; a 15-character id matches an 18-character
// one on its first 15 characters (the 18-character form appends a
// case-checksum of the first 15).
func sameOrg(got, want string) bool {
	switch {
	case len(got) == 18 && len(want) == 15:
		got = got[:15]
	case len(got) == 15 && len(want) == 18:
		want = want[:15]
	}
	return connectors.EqualToken(got, want)
}

// maxQuoted is the longest sender text (an encoding name, an XML error,
// an sObject type) kept in an error or in evidence, in bytes.
const maxQuoted = 120

// clipErr bounds an XML error message (it may quote input).
func clipErr(err error) string { return connectors.Clip(err.Error(), maxQuoted) }
