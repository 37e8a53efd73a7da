package backfill

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/consentsync/consentsync/consent"
)

// Field is a column a CSV export may carry, by its canonical name (the
// default header). README.md, "Backfill", documents each.
type Field string

// The fields a CSV row is read into.
const (
	FieldEmail          Field = "email"
	FieldPhone          Field = "phone"
	FieldChannel        Field = "channel"
	FieldBrand          Field = "brand"
	FieldPurpose        Field = "purpose"
	FieldStatus         Field = "status"
	FieldOccurredAt     Field = "occurred_at"
	FieldWordingVersion Field = "wording_version"
	FieldWordingHash    Field = "wording_hash"
	FieldCheckbox       Field = "checkbox"
	FieldConfirmedAt    Field = "confirmed_at"
	FieldOptInLevel     Field = "opt_in_level"
	FieldFormID         Field = "form_id"
	FieldListID         Field = "list_id"
	FieldPageURL        Field = "page_url"
	FieldIP             Field = "ip"
	FieldUserAgent      Field = "user_agent"
	FieldEventID        Field = "event_id"
	FieldEvent          Field = "event"
	FieldPartnerList    Field = "partner_list"
)

// Fields lists every field in documentation order.
var Fields = []Field{FieldEmail, FieldPhone, FieldChannel, FieldBrand, FieldPurpose, FieldStatus, FieldOccurredAt,
	FieldWordingVersion, FieldWordingHash, FieldCheckbox, FieldConfirmedAt, FieldOptInLevel, FieldFormID, FieldListID,
	FieldPageURL, FieldIP, FieldUserAgent, FieldEventID, FieldEvent, FieldPartnerList}

// Columns maps a field to the header of the column that holds it in the
// export (matched case-insensitively, spaces trimmed). A field not named
// is looked for under its canonical name.
type Columns map[Field]string

// Set reads one "field=Header" pair (the -col flag; flag.Value) into c.
func (c Columns) Set(pair string) error {
	f, h, ok := strings.Cut(pair, "=")
	if !ok || strings.TrimSpace(h) == "" {
		return fmt.Errorf("-col %q: want field=Header", pair)
	}
	field := Field(strings.TrimSpace(f))
	if !slices.Contains(Fields, field) {
		return fmt.Errorf("-col %q: unknown field %q (want one of %s)", pair, field, fieldList())
	}
	c[field] = strings.TrimSpace(h)
	return nil
}

// String renders c (flag.Value).
func (c Columns) String() string {
	var parts []string
	for _, f := range Fields {
		if h, ok := c[f]; ok {
			parts = append(parts, string(f)+"="+h)
		}
	}
	return strings.Join(parts, ",")
}

// LoadColumns reads a mapping file: YAML (or JSON) of field: header, e.g.
//
//	email: Email Address
//	status: Subscription Status
//	occurred_at: Last Changed
func LoadColumns(path string) (Columns, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]string
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := Columns{}
	for f, h := range raw {
		if err := c.Set(f + "=" + h); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return c, nil
}

func fieldList() string {
	s := make([]string, len(Fields))
	for i, f := range Fields {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// Defaults fill fields a row leaves empty or an export lacks.
type Defaults struct {
	Brand   string
	Channel consent.Channel
	Purpose consent.Purpose
	// Status is used when the export has no status column (an export of
	// unsubscribes only: StatusWithdrawn).
	Status consent.Status
	// OccurredAt dates rows without a date; zero makes a date required.
	OccurredAt time.Time
	// Location reads dates written without a zone (UTC when nil).
	Location *time.Location
}

// Mapping reads the records of one CSV export into signals: built from its
// header row by NewMapping, then Row for each record.
type Mapping struct {
	index    map[Field]int
	defaults Defaults
	brands   []string
	region   string
	// Unknown lists the header cells that map to no field (ignored).
	Unknown []string
}

// Errors NewMapping returns.
var (
	ErrNoIdentifierColumn = errors.New("no email or phone column")
	ErrNoStatusColumn     = errors.New("no status column (give -status for an export of one status)")
)

// NewMapping matches header (the export's first record) against cols.
// A UTF-8 byte order mark before the first header is ignored. brands are
// the configured brands a row may name; region reads national phone
// numbers. It returns ErrNoIdentifierColumn or ErrNoStatusColumn (wrapped)
// when the export cannot give a subject or a status, and an error for a
// header two fields claim, a field's header that appears twice, or a
// named column the header lacks.
func NewMapping(header []string, cols Columns, d Defaults, brands []string, region string) (*Mapping, error) {
	m := &Mapping{index: map[Field]int{}, defaults: d, brands: brands, region: region}
	if m.defaults.Location == nil {
		m.defaults.Location = time.UTC
	}
	pos := map[string]int{}
	twice := map[string]int{} // a header name's second column
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, utf8BOM)
		}
		k := strings.ToLower(strings.TrimSpace(h))
		if _, dup := pos[k]; !dup {
			pos[k] = i
		} else if _, seen := twice[k]; !seen {
			twice[k] = i
		}
	}
	used := map[int]bool{}
	for _, f := range Fields {
		name, named := cols[f]
		if !named {
			name = string(f)
		}
		i, ok := pos[strings.ToLower(strings.TrimSpace(name))]
		if !ok {
			if named {
				return nil, fmt.Errorf("column %q (for %s) is not in the header", name, f)
			}
			continue
		}
		if used[i] {
			return nil, fmt.Errorf("column %q is mapped to two fields", name)
		}
		if j, dup := twice[strings.ToLower(strings.TrimSpace(name))]; dup {
			// Which of the two holds the field's data is a guess: reading
			// the first would silently drop the other's values.
			return nil, fmt.Errorf("column %q (for %s) appears twice in the header (columns %d and %d): rename one, or map another header with -col %s=Header",
				consent.CleanText(strings.TrimSpace(name), 80), f, i+1, j+1, f)
		}
		used[i] = true
		m.index[f] = i
	}
	for i, h := range header {
		if !used[i] && strings.TrimSpace(h) != "" {
			m.Unknown = append(m.Unknown, consent.CleanText(strings.TrimSpace(strings.TrimPrefix(h, utf8BOM)), 80))
		}
	}
	_, email := m.index[FieldEmail]
	_, phone := m.index[FieldPhone]
	if !email && !phone {
		return nil, fmt.Errorf("%w (header names: email, phone; or map one with -col email=Header)", ErrNoIdentifierColumn)
	}
	if _, ok := m.index[FieldStatus]; !ok && d.Status == "" {
		return nil, ErrNoStatusColumn
	}
	return m, nil
}

func (m *Mapping) cell(rec []string, f Field) string {
	i, ok := m.index[f]
	if !ok || i >= len(rec) {
		return ""
	}
	return strings.TrimSpace(rec[i])
}

// Row reads one record into a signal ready to import (Source and
// Evidence.Imported are set by the caller). The error is the reason the
// row is rejected, worded for the report and free of the row's personal
// data: "bad email", "bad phone", "unknown status \"maybe\"", "bad
// occurred_at", "unknown brand", ...
func (m *Mapping) Row(rec []string) (consent.Signal, error) {
	var sig consent.Signal
	email, phone := m.cell(rec, FieldEmail), m.cell(rec, FieldPhone)
	if email == "" && phone == "" {
		return sig, errors.New("no email or phone")
	}
	if email != "" {
		if _, _, err := consent.NormalizeEmail(email); err != nil {
			return sig, errors.New("bad email")
		}
		sig.Subject.Email = email
	}
	if phone != "" {
		if _, err := consent.NormalizePhone(phone, m.region); err != nil {
			return sig, errors.New("bad phone")
		}
		sig.Subject.Phone = phone
	}
	status, err := ParseStatus(m.cell(rec, FieldStatus), m.defaults.Status)
	if err != nil {
		if v := m.cell(rec, FieldStatus); v != "" {
			return sig, fmt.Errorf("unknown status %q", m.short(v))
		}
		return sig, err
	}
	sig.Status = status
	sig.Channel = m.defaults.Channel
	if v := m.cell(rec, FieldChannel); v != "" {
		c, err := consent.ParseChannel(strings.ToLower(v))
		if err != nil {
			return sig, fmt.Errorf("unknown channel %q", m.short(v))
		}
		sig.Channel = c
	}
	if sig.Channel == "" {
		sig.Channel = consent.ChannelEmail
	}
	if sig.Channel == consent.ChannelEmail && email == "" {
		return sig, errors.New("email channel without an email")
	}
	if sig.Channel != consent.ChannelEmail && sig.Channel != consent.ChannelPost && phone == "" {
		return sig, fmt.Errorf("%s channel without a phone", sig.Channel)
	}
	sig.Purpose = m.defaults.Purpose
	if v := m.cell(rec, FieldPurpose); v != "" {
		p, err := consent.ParsePurpose(strings.ToLower(v))
		if err != nil {
			return sig, fmt.Errorf("unknown purpose %q", m.short(v))
		}
		sig.Purpose = p
	}
	if sig.Purpose == "" {
		sig.Purpose = consent.PurposeMarketing
	}
	sig.Brand = m.defaults.Brand
	if v := m.cell(rec, FieldBrand); v != "" {
		sig.Brand = v
	}
	switch {
	case sig.Brand == "":
		return sig, errors.New("no brand (give -brand)")
	case len(m.brands) > 0 && !slices.Contains(m.brands, sig.Brand):
		return sig, fmt.Errorf("unknown brand %q", m.short(sig.Brand))
	}
	if v := m.cell(rec, FieldOccurredAt); v != "" {
		t, err := ParseTime(v, m.defaults.Location)
		if err != nil {
			return sig, fmt.Errorf("bad occurred_at %q", m.short(v))
		}
		sig.OccurredAt = t
	} else if !m.defaults.OccurredAt.IsZero() {
		sig.OccurredAt = m.defaults.OccurredAt
	} else {
		return sig, errors.New("no occurred_at (give -occurred-at for rows without a date)")
	}
	if y := sig.OccurredAt.Year(); y < consent.MinYear || y > consent.MaxYear {
		return sig, fmt.Errorf("occurred_at year %d outside %d..%d", y, consent.MinYear, consent.MaxYear)
	}
	if sig.OccurredAt.Unix() <= 0 {
		// What exports write for no date (a zeroed Unix field): dated 1970,
		// a withdrawal would lose to every grant.
		return sig, errors.New("occurred_at is the Unix epoch (1970-01-01T00:00:00Z), a missing date")
	}
	ev := &sig.Evidence
	ev.WordingVersion = m.cell(rec, FieldWordingVersion)
	ev.WordingHash = m.cell(rec, FieldWordingHash)
	ev.Checkbox = m.cell(rec, FieldCheckbox)
	ev.OptInLevel = m.cell(rec, FieldOptInLevel)
	ev.FormID = m.cell(rec, FieldFormID)
	ev.ListID = m.cell(rec, FieldListID)
	ev.PageURL = m.cell(rec, FieldPageURL)
	ev.IP = m.cell(rec, FieldIP)
	ev.UserAgent = m.cell(rec, FieldUserAgent)
	ev.EventID = m.cell(rec, FieldEventID)
	ev.Event = m.cell(rec, FieldEvent)
	ev.PartnerList = m.cell(rec, FieldPartnerList)
	if v := m.cell(rec, FieldConfirmedAt); v != "" {
		t, err := ParseTime(v, m.defaults.Location)
		if err != nil {
			return sig, fmt.Errorf("bad confirmed_at %q", m.short(v))
		}
		ev.ConfirmedAt = &t
	}
	sig = sig.Clean()
	if _, err := consent.NormalizeSubject(sig.Subject, m.region); err != nil {
		return sig, fmt.Errorf("bad identifier: %v", err)
	}
	if err := sig.Validate(); err != nil {
		return sig, err
	}
	return sig, nil
}

// short quotes at most 40 bytes of a cell in a reason.
func short(v string) string { return consent.CleanText(v, 40) }

// short quotes a cell in a reason (short), unless it holds an address or
// a phone number (cells shifted by a missing or extra delimiter put them
// in any column): reasons never repeat personal data.
func (m *Mapping) short(v string) string {
	if strings.Contains(v, "@") {
		return "(an address)"
	}
	if _, err := consent.NormalizePhone(v, m.region); err == nil {
		return "(a number)"
	}
	return short(v)
}

// ParseStatus reads a status cell (case-insensitive, trimmed); an empty
// cell takes def. Accepted:
//
//	withdrawn: withdrawn, unsubscribed, unsubscribe, opted_out, opt_out, optout, opted-out, revoked, objected
//	granted:   granted, subscribed, opted_in, opt_in, optin, opted-in, consented
//	pending:   pending
//
// Anything else is refused ("unknown status"): a value we would have to
// guess at is never read as consent or its absence.
func ParseStatus(v string, def consent.Status) (consent.Status, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		if def == "" {
			return "", errors.New("no status")
		}
		return def, nil
	case "withdrawn", "unsubscribed", "unsubscribe", "opted_out", "opt_out", "optout", "opted-out", "opt-out", "revoked", "objected":
		return consent.StatusWithdrawn, nil
	case "granted", "subscribed", "opted_in", "opt_in", "optin", "opted-in", "opt-in", "consented":
		return consent.StatusGranted, nil
	case "pending":
		return consent.StatusPending, nil
	}
	return "", fmt.Errorf("unknown status %q", short(v))
}

// timeLayouts are the date forms exports write, tried in order; a form
// without a zone is read in the mapping's location.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05 Z07:00",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 MST",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
	time.RFC1123Z,
	time.RFC1123,
}

// ParseTime reads a date cell: RFC 3339 (with or without fraction), ISO
// forms with a space ("2024-03-01 09:30:00", Mailchimp's exports), a bare
// date, RFC 1123 (e-mail headers), or Unix time in seconds (10 digits,
// SendGrid's "created") or milliseconds (13 digits). Forms without a zone
// are read in loc. Day-first and month-first slashed dates (01/02/2024)
// are refused: they cannot be told apart.
func ParseTime(v string, loc *time.Location) (time.Time, error) {
	v = strings.TrimSpace(v)
	if loc == nil {
		loc = time.UTC
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		switch len(strings.TrimPrefix(v, "-")) {
		case 9, 10:
			return time.Unix(n, 0).UTC(), nil
		case 12, 13:
			return time.UnixMilli(n).UTC(), nil
		}
		return time.Time{}, errors.New("a number that is neither Unix seconds nor milliseconds")
	}
	for _, l := range timeLayouts {
		t, err := time.ParseInLocation(l, v, loc)
		if err != nil {
			continue
		}
		if strings.Contains(l, "MST") && !knownZone(t, loc) {
			return time.Time{}, errors.New("a time zone abbreviation whose offset is unknown (write the offset, e.g. +0100)")
		}
		return t.UTC(), nil
	}
	return time.Time{}, errors.New("unknown date format")
}

// knownZone reports whether t, parsed from a layout with a zone
// abbreviation, has a true offset: UTC or GMT, or an abbreviation loc uses
// (Go sets loc then). time.Parse gives any other abbreviation ("PST",
// "EST", "GMT+2") a made-up zone with a zero offset, hours off.
func knownZone(t time.Time, loc *time.Location) bool {
	if t.Location() == loc || t.Location() == time.UTC {
		return true
	}
	name, off := t.Zone()
	return off == 0 && (name == "UTC" || name == "GMT" || name == "UT")
}

// utf8BOM is the UTF-8 byte order mark some exports put first (NewRows
// drops it before the CSV reader; NewMapping, for a header read
// elsewhere, from its first cell).
const utf8BOM = "\uFEFF"

// Rows streams one export's data rows: the header row read by NewRows,
// then one Row per non-blank record (empty lines and records of empty
// cells are skipped). It holds one record at a time.
type Rows struct {
	cr *csv.Reader
	// Mapping is the header's (its Unknown columns for the report).
	Mapping *Mapping
}

// Row is one data row: its line number in the file (the header is line
// 1; a quoted cell spanning lines counts them) and either its signal or
// why it is rejected.
type Row struct {
	Line   int
	Signal consent.Signal
	Reject string
}

// NewRows reads the header of r (see NewMapping). comma is the field
// separator (',' when zero). Records may have fewer or more cells than
// the header: missing cells are empty, extra ones ignored.
func NewRows(r io.Reader, comma rune, cols Columns, d Defaults, brands []string, region string) (*Rows, error) {
	// A byte order mark goes before the reader sees it: before a quoted
	// first header ("\uFEFF\"email\",...", exports that quote every cell)
	// it would make that quote a bare one, an unreadable header.
	br := bufio.NewReader(r)
	if b, err := br.Peek(len(utf8BOM)); err == nil && string(b) == utf8BOM {
		_, _ = br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	if comma != 0 {
		cr.Comma = comma
	}
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty file: no header row")
	}
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	m, err := NewMapping(append([]string(nil), header...), cols, d, brands, region)
	if err != nil {
		return nil, err
	}
	return &Rows{cr: cr, Mapping: m}, nil
}

// Next returns the next data row, or io.EOF after the last. A record the
// CSV reader cannot read (a bare quote) is a rejected Row, and reading
// goes on with the next line; any other error is returned (the file could
// not be read).
func (r *Rows) Next() (Row, error) {
	for {
		rec, err := r.cr.Read()
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return Row{Line: pe.StartLine, Reject: "unreadable CSV: " + pe.Err.Error()}, nil
			}
			return Row{}, err
		}
		if blank(rec) {
			continue
		}
		line, _ := r.cr.FieldPos(0)
		sig, err := r.Mapping.Row(rec)
		if err != nil {
			return Row{Line: line, Reject: err.Error()}, nil
		}
		return Row{Line: line, Signal: sig}, nil
	}
}

// blank reports a record of empty cells only (",,,"): skipped like an
// empty line.
func blank(rec []string) bool {
	for _, c := range rec {
		if c != "" {
			return false
		}
	}
	return true
}
