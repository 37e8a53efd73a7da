package backfill

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/consent"
)

// readAll reads a whole export with Rows (what CSV imports), returning
// signals and "line N: reason" rejections.
func readAll(t *testing.T, data string, cols Columns, d Defaults) ([]consent.Signal, []string, *Mapping, error) {
	t.Helper()
	rows, err := NewRows(strings.NewReader(data), 0, cols, d, []string{"acme", "globex"}, "FR")
	if err != nil {
		return nil, nil, nil, err
	}
	var sigs []consent.Signal
	var rej []string
	for {
		r, err := rows.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, nil, err
		}
		if r.Reject != "" {
			rej = append(rej, fmt.Sprintf("line %d: %s", r.Line, r.Reject))
			continue
		}
		sigs = append(sigs, r.Signal)
	}
	return sigs, rej, rows.Mapping, nil
}

// TestCSVNastyInputs: byte order marks, CRLF line ends, quoted commas and
// newlines, empty lines, unknown columns, mixed-case headers and dates in
// several formats are read; every bad row is rejected with its own line.
func TestCSVNastyInputs(t *testing.T) {
	t.Parallel()
	d := Defaults{Brand: "acme"}
	cases := []struct {
		name    string
		data    string
		cols    Columns
		d       Defaults
		want    []string // "email status occurred_at(RFC3339)"
		rejects []string
		unknown []string
	}{
		{name: "BOM and CRLF",
			data: "\uFEFFemail,status,occurred_at\r\nA@Example.com,unsubscribed,2024-03-01T10:00:00Z\r\nb@example.com,subscribed,2024-03-02 11:30:00\r\n",
			want: []string{"A@Example.com withdrawn 2024-03-01T10:00:00Z", "b@example.com granted 2024-03-02T11:30:00Z"}},
		{name: "BOM before a quoted header (exports that quote every cell)",
			data: "\uFEFF\"email\",\"status\",\"occurred_at\"\r\n\"a@example.com\",\"withdrawn\",\"2024-03-01\"\r\n",
			want: []string{"a@example.com withdrawn 2024-03-01T00:00:00Z"}},
		{name: "quoted commas, newlines and quotes",
			data: "email,status,occurred_at,user_agent\n\"c@example.com\",withdrawn,2024-03-01,\"Mozilla/5.0 (X11, Linux)\nsecond line \"\"quoted\"\"\"\n",
			want: []string{"c@example.com withdrawn 2024-03-01T00:00:00Z"}},
		{name: "empty lines and blank records",
			data: "email,status,occurred_at\n\n\nd@example.com,opted_out,1709287200\n,,\n\ne@example.com,Opt-In,1709287200123\n",
			want: []string{"d@example.com withdrawn 2024-03-01T10:00:00Z", "e@example.com granted 2024-03-01T10:00:00.123Z"}},
		{name: "unknown columns ignored, headers case-insensitive",
			data:    "Email , STATUS,Occurred_At,favourite colour,\nf@example.com,withdrawn,\"Fri, 01 Mar 2024 10:00:00 +0100\",blue,x\n",
			want:    []string{"f@example.com withdrawn 2024-03-01T09:00:00Z"},
			unknown: []string{"favourite colour"}},
		{name: "mapped headers (Mailchimp export)",
			data: "Email Address,MEMBER_RATING,UNSUB_TIME\ng@example.com,2,2019-05-06 07:08:09\n",
			cols: Columns{FieldEmail: "Email Address", FieldOccurredAt: "UNSUB_TIME"}, d: Defaults{Brand: "acme", Status: consent.StatusWithdrawn},
			want: []string{"g@example.com withdrawn 2019-05-06T07:08:09Z"}, unknown: []string{"MEMBER_RATING"}},
		{name: "bad rows with line numbers",
			data: "email,status,occurred_at,brand,channel,purpose\n" +
				"not-an-address,withdrawn,2024-03-01,,,\n" + // 2
				"h@example.com,maybe,2024-03-01,,,\n" + // 3
				"i@example.com,withdrawn,01/02/2024,,,\n" + // 4
				"j@example.com,withdrawn,2024-03-01,initech,,\n" + // 5
				"k@example.com,withdrawn,2024-03-01,,fax,\n" + // 6
				"l@example.com,withdrawn,2024-03-01,,,newsletters\n" + // 7
				",withdrawn,2024-03-01,,,\n" + // 8
				"m@example.com,withdrawn,,,,\n" + // 9
				"n@example.com,withdrawn,2024-03-01,globex,email,partners\n" + // 10
				"o@example.com,withdrawn,1800-01-01,,,\n", // 11
			want: []string{"n@example.com withdrawn 2024-03-01T00:00:00Z"},
			rejects: []string{"line 2: bad email", `line 3: unknown status "maybe"`, `line 4: bad occurred_at "01/02/2024"`,
				`line 5: unknown brand "initech"`, `line 6: unknown channel "fax"`, `line 7: unknown purpose "newsletters"`,
				"line 8: no email or phone", "line 9: no occurred_at (give -occurred-at for rows without a date)",
				"line 11: occurred_at year 1800 outside 1970..9999"}},
		{name: "short and long records",
			data: "email,status,occurred_at\np@example.com,withdrawn\nq@example.com,withdrawn,2024-03-01,extra,cells\n",
			d:    Defaults{Brand: "acme", OccurredAt: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)},
			want: []string{"p@example.com withdrawn 2020-01-01T00:00:00Z", "q@example.com withdrawn 2024-03-01T00:00:00Z"}},
		{name: "bare quote is one rejected line, the next row still read",
			data:    "email,status,occurred_at\nr@exa\"mple.com,withdrawn,2024-03-01\ns@example.com,withdrawn,2024-03-01\n",
			want:    []string{"s@example.com withdrawn 2024-03-01T00:00:00Z"},
			rejects: []string{"line 2: unreadable CSV: bare \" in non-quoted-field"}},
		{name: "the Unix epoch is a missing date",
			data:    "email,status,occurred_at\nu@example.com,withdrawn,1970-01-01T00:00:00Z\nv@example.com,withdrawn,1970-01-01\nw@example.com,withdrawn,1970-01-01T00:00:01Z\n",
			want:    []string{"w@example.com withdrawn 1970-01-01T00:00:01Z"},
			rejects: []string{"line 2: occurred_at is the Unix epoch (1970-01-01T00:00:00Z), a missing date", "line 3: occurred_at is the Unix epoch (1970-01-01T00:00:00Z), a missing date"}},
		{name: "reasons never repeat an address or a number (shifted cells)",
			data: "email,status,occurred_at,brand\n" +
				"x@example.com,other@example.com,2024-03-01,\n" + // 2
				"y@example.com,withdrawn,+33 6 12 34 56 78,\n" + // 3
				"z@example.com,withdrawn,2024-03-01,06 12 34 56 78\n", // 4
			rejects: []string{`line 2: unknown status "(an address)"`, `line 3: bad occurred_at "(a number)"`, `line 4: unknown brand "(a number)"`}},
		{name: "sms needs a phone",
			data: "email,phone,channel,status,occurred_at\nt@example.com,,sms,withdrawn,2024-03-01\n,06 12 34 56 78,sms,withdrawn,2024-03-01\n",
			want: []string{" withdrawn 2024-03-01T00:00:00Z"}, rejects: []string{"line 2: sms channel without a phone"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dd := c.d
			if dd == (Defaults{}) {
				dd = d
			}
			sigs, rej, m, err := readAll(t, c.data, c.cols, dd)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range sigs {
				got = append(got, s.Subject.Email+" "+string(s.Status)+" "+s.OccurredAt.UTC().Format(time.RFC3339Nano))
			}
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("signals:\n got %q\nwant %q", got, c.want)
			}
			if strings.Join(rej, "|") != strings.Join(c.rejects, "|") {
				t.Errorf("rejections:\n got %q\nwant %q", rej, c.rejects)
			}
			if strings.Join(m.Unknown, "|") != strings.Join(c.unknown, "|") {
				t.Errorf("unknown columns: got %q want %q", m.Unknown, c.unknown)
			}
		})
	}
}

// TestCSVHeaderErrors: an export that cannot name a subject or a status,
// or a mapping naming a missing column, is refused before any row.
func TestCSVHeaderErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		header string
		cols   Columns
		d      Defaults
		want   string
	}{
		{"name,status", nil, Defaults{}, "no email or phone column"},
		{"email,occurred_at", nil, Defaults{}, "no status column"},
		{"email,status", Columns{FieldOccurredAt: "When"}, Defaults{}, `column "When" (for occurred_at) is not in the header`},
		{"email,status", Columns{FieldPhone: "email"}, Defaults{}, `column "email" is mapped to two fields`},
		{"email,status,occurred_at,Status", nil, Defaults{}, `column "status" (for status) appears twice in the header (columns 2 and 4)`},
		{"\uFEFFEmail,status, EMAIL ", nil, Defaults{}, `column "email" (for email) appears twice in the header (columns 1 and 3)`},
		{"Email Address,status,Email Address", Columns{FieldEmail: "email address"}, Defaults{}, `appears twice`},
	} {
		_, err := NewMapping(strings.Split(c.header, ","), c.cols, c.d, nil, "FR")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.header, err, c.want)
		}
	}
}

// TestParseTime: the accepted date forms, and the refused ambiguous ones.
func TestParseTime(t *testing.T) {
	t.Parallel()
	paris, _ := time.LoadLocation("Europe/Paris")
	want := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, v := range []string{"2024-03-01T09:00:00Z", "2024-03-01T10:00:00+01:00", "2024-03-01T09:00:00.000Z", "2024-03-01 09:00:00Z",
		"2024-03-01 10:00:00 +0100", "1709283600", "1709283600000", "Fri, 01 Mar 2024 09:00:00 GMT", "Fri, 01 Mar 2024 10:00:00 +0100"} {
		got, err := ParseTime(v, paris)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: got %v, %v; want %v", v, got, err, want)
		}
	}
	if got, err := ParseTime("2024-03-01 10:00:00", paris); err != nil || !got.Equal(want) {
		t.Errorf("zone-less time in Europe/Paris: %v %v", got, err)
	}
	for _, v := range []string{"01/03/2024", "03/01/2024", "yesterday", "12345", "", "2024-13-01"} {
		if _, err := ParseTime(v, nil); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

// TestParseTimeZoneAbbreviations: a zone written as an abbreviation is
// read only when its offset is known (UTC, GMT, or one the -timezone
// location uses); Go's time.Parse gives any other abbreviation ("PST",
// "EST", "GMT+2") a zero offset, which would date the row hours off and
// could order a withdrawal after a grant it preceded.
func TestParseTimeZoneAbbreviations(t *testing.T) {
	t.Parallel()
	paris, _ := time.LoadLocation("Europe/Paris")
	want := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v   string
		loc *time.Location
	}{
		{"2024-03-01 09:00:00 UTC", nil}, {"2024-03-01 09:00:00 GMT", paris}, {"2024-03-01 10:00:00 CET", paris},
		{"Fri, 01 Mar 2024 10:00:00 CET", paris}, {"Fri, 01 Mar 2024 09:00:00 UTC", paris},
	} {
		if got, err := ParseTime(c.v, c.loc); err != nil || !got.Equal(want) {
			t.Errorf("%q in %v: got %v, %v; want %v", c.v, c.loc, got, err, want)
		}
	}
	for _, c := range []struct {
		v   string
		loc *time.Location
	}{
		{"2024-03-01 01:00:00 PST", nil}, {"2024-03-01 10:00:00 CET", nil}, {"Fri, 01 Mar 2024 04:00:00 EST", paris},
		{"2024-03-01 11:00:00 GMT+2", nil}, {"2024-03-01 09:00:00 XYZ", paris},
	} {
		if got, err := ParseTime(c.v, c.loc); err == nil {
			t.Errorf("%q in %v: read as %v, want refused (offset of the abbreviation unknown)", c.v, c.loc, got)
		}
	}
}

// TestImportedGrantQuality: a grant imported without a tick is recorded
// with criterion express unknown (ReasonImported); one with a tick is not.
func TestImportedGrantQuality(t *testing.T) {
	t.Parallel()
	sigs, _, _, err := readAll(t, "email,status,occurred_at,checkbox,wording_version\nu@example.com,granted,2024-03-01,,v1\nv@example.com,granted,2024-03-01,on,v1\n", nil, Defaults{Brand: "acme"})
	if err != nil || len(sigs) != 2 {
		t.Fatal(sigs, err)
	}
	for i, want := range []bool{true, false} {
		sigs[i].Evidence.Imported = "imported from crm-export at 2026-01-01T00:00:00Z"
		if got := consent.ImportedWithoutProof(consent.Assess(sigs[i], consent.QualityContext{})); got != want {
			t.Errorf("row %d: without proof = %v, want %v", i, got, want)
		}
	}
}

// FuzzCSVRow: any header and record either yield a signal that validates
// or an error; never a panic.
func FuzzCSVRow(f *testing.F) {
	f.Add("email,status,occurred_at", "a@example.com,withdrawn,2024-03-01")
	f.Add("\uFEFFEmail,Status,occurred_at,phone,channel", "x,granted,1709283600,+33612345678,sms")
	f.Add("email,status,occurred_at,confirmed_at,brand", "\"a,b\"@example.com,opt-in,2024-03-01 10:00,bad,acme")
	f.Fuzz(func(t *testing.T, header, record string) {
		hr := csv.NewReader(strings.NewReader(header))
		hr.FieldsPerRecord = -1
		h, err := hr.Read()
		if err != nil {
			return
		}
		m, err := NewMapping(h, nil, Defaults{Brand: "acme"}, []string{"acme"}, "FR")
		if err != nil {
			return
		}
		rr := csv.NewReader(strings.NewReader(record))
		rr.FieldsPerRecord = -1
		rec, err := rr.Read()
		if err != nil {
			return
		}
		sig, err := m.Row(rec)
		if err != nil {
			return
		}
		if err := sig.Validate(); err != nil {
			t.Fatalf("accepted row does not validate: %v", err)
		}
		if _, err := consent.NormalizeSubject(sig.Subject, "FR"); err != nil {
			t.Fatalf("accepted row has a bad subject: %v", err)
		}
	})
}

// TestColumnsMapping: a mapping file (YAML field: Header) and -col pairs
// name columns; unknown fields and malformed pairs are refused with the
// offending text.
func TestColumnsMapping(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/map.yaml"
	if err := os.WriteFile(path, []byte("email: Email Address\nstatus: \"Subscription Status\"\noccurred_at: Last Changed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadColumns(path)
	if err != nil || c[FieldEmail] != "Email Address" || c[FieldStatus] != "Subscription Status" || c[FieldOccurredAt] != "Last Changed" {
		t.Fatalf("mapping %v %v", c, err)
	}
	if c.String() != "email=Email Address,status=Subscription Status,occurred_at=Last Changed" {
		t.Errorf("String %q", c.String())
	}
	for _, bad := range []struct{ file, want string }{
		{"colour: Fav\n", `unknown field "colour"`},
		{"email: [a, b]\n", "cannot unmarshal"},
		{"email: \"\"\n", "want field=Header"},
	} {
		if err := os.WriteFile(path, []byte(bad.file), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadColumns(path); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v", bad.file, err)
		}
	}
	set := Columns{}
	if err := set.Set(" phone = Mobile "); err != nil || set[FieldPhone] != "Mobile" {
		t.Errorf("Set: %v %v", set, err)
	}
	if err := set.Set("nofield"); err == nil {
		t.Error("pair without = accepted")
	}
}

// TestCSVDryRunCountsRepeatedChunks: a file whose rows repeat in a
// chunk-aligned block (an exporting tool that sent one page twice) is one
// new chunk and one duplicate, in a dry run as in the real run that
// follows it: the dry run reports what the run will do.
func TestCSVDryRunCountsRepeatedChunks(t *testing.T) {
	t.Parallel()
	im, _ := newImporter(t)
	block := "a@example.com,withdrawn,2024-03-01T10:00:00Z\nb@example.com,withdrawn,2024-03-01T10:00:00Z\n"
	data := "email,status,occurred_at\n" + block + block + "c@example.com,withdrawn,2024-03-02T10:00:00Z\n"
	opts := func(dry bool) CSVOptions {
		return CSVOptions{Source: "crm-export", Defaults: Defaults{Brand: "acme"}, Brands: []string{"acme"}, Region: "FR", ChunkRows: 2, DryRun: dry}
	}
	ctx := context.Background()
	dry, err := im.CSV(ctx, strings.NewReader(data), opts(true))
	if err != nil {
		t.Fatal(err)
	}
	real, err := im.CSV(ctx, strings.NewReader(data), opts(false))
	if err != nil {
		t.Fatal(err)
	}
	if real.Pages != 3 || real.InboxRows != 2 || real.DuplicatePages != 1 {
		t.Fatalf("real run: %d chunks, %d written, %d duplicates; want 3, 2, 1", real.Pages, real.InboxRows, real.DuplicatePages)
	}
	if dry.Pages != real.Pages || dry.InboxRows != real.InboxRows || dry.DuplicatePages != real.DuplicatePages {
		t.Fatalf("dry run: %d chunks, %d new, %d duplicates; the run did %d, %d, %d",
			dry.Pages, dry.InboxRows, dry.DuplicatePages, real.Pages, real.InboxRows, real.DuplicatePages)
	}
}
