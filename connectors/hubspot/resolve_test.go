package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/sandbox"
)

// contactsFake serves n contacts 1000001 … 1000000+n with emails
// p<i>@example.com, plus extra.
func contactsFake(t testing.TB, n int, extra map[string]json.RawMessage) *fake {
	t.Helper()
	c := map[string]json.RawMessage{}
	for i := 1; i <= n; i++ {
		id := fmt.Sprint(1000000 + i)
		c[id] = json.RawMessage(fmt.Sprintf(`{"id":%q,"properties":{"email":"p%d@example.com","hs_object_id":%q}}`, id, i, id))
	}
	for id, v := range extra {
		c[id] = v
	}
	return newFake(t, sandbox.WithHubSpotContacts(c))
}

func fakeSource(t testing.TB, sb *fake) *Source {
	t.Helper()
	_, cfg := fixture(t, sb.URL)
	return newSource(t, cfg, testHTTP())
}

// signals returns one withdrawal per id, naming the contact by id only.
func signals(ids ...string) *connectors.Batch {
	b := &connectors.Batch{}
	for _, id := range ids {
		b.Signals = append(b.Signals, consent.Signal{Subject: consent.Subject{ExternalID: ExternalIDPrefix + id}, Status: consent.StatusWithdrawn})
	}
	return b
}

// ids returns n contact ids of contactsFake from the first.
func ids(first, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(1000000 + first + i)
	}
	return out
}

// checkCalls fails unless every call was a POST batch read with at most
// MaxBatchRead inputs, the email property and the token.
func checkCalls(t *testing.T, sb *fake) {
	t.Helper()
	for i, c := range sb.Calls(sandbox.HubSpot) {
		if c.Method != http.MethodPost || c.Path != "/hubspot"+BatchReadPath || !c.AuthOK || len(c.ContactIDs) > MaxBatchRead || len(c.ContactIDs) == 0 {
			t.Errorf("call %d: %s %s auth %v, %d ids", i, c.Method, c.Path, c.AuthOK, len(c.ContactIDs))
		}
		if c.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(c.Body), `"properties":["email","hs_merged_object_ids"]`) {
			t.Errorf("call %d: %v %s", i, c.Header, c.Body)
		}
	}
}

func TestResolveBatch(t *testing.T) {
	extra := map[string]json.RawMessage{
		"7": json.RawMessage(`{"id":"7","properties":{"hs_object_id":"7"}}`),                                                          // no email
		"8": json.RawMessage(`{"id":"8","properties":{"email":" m@example.com ","hs_object_id":"8","hs_merged_object_ids":"81;82"}}`), // 81, 82 merged into 8
	}
	tests := []struct {
		name    string
		ids     []string
		script  []sandbox.Answer
		calls   int // calls made
		inputs  []int
		emails  int // signals resolved
		skipped []string
		err     func(error) bool // nil: no error
	}{
		{
			name:    "found, missing, no email, merged",
			ids:     []string{"1000001", "999", "7", "81", "1000001", "8", "82"},
			calls:   1,
			inputs:  []int{6},
			emails:  5,
			skipped: []string{"signal 2: contact gone at HubSpot (404)", "signal 3: contact has no email at HubSpot"},
		},
		{
			name:   "250 ids: three calls of at most 100",
			ids:    ids(1, 250),
			calls:  3,
			inputs: []int{100, 100, 50},
			emails: 250,
		},
		{
			name:   "exactly 100 ids: one call",
			ids:    ids(1, 100),
			calls:  1,
			inputs: []int{100},
			emails: 100,
		},
		{
			name:   "429 then success",
			ids:    ids(1, 3),
			script: []sandbox.Answer{sandbox.TooManyRequestsSeconds(0)},
			calls:  2,
			inputs: []int{3, 3},
			emails: 3,
		},
		{
			name:   "429 every time: transient error",
			ids:    ids(1, 3),
			script: sandbox.Repeat(sandbox.TooManyRequestsSeconds(0), 2),
			calls:  2,
			err:    func(err error) bool { return err != nil && !errors.Is(err, connectors.ErrPermanent) },
		},
		{
			name:   "400: permanent error",
			ids:    ids(1, 3),
			script: []sandbox.Answer{sandbox.BadRequest()},
			calls:  1,
			err:    func(err error) bool { return errors.Is(err, connectors.ErrPermanent) },
		},
		{
			name:   "207 with another error category: transient error",
			ids:    ids(1, 2),
			script: []sandbox.Answer{{Status: http.StatusMultiStatus, Body: `{"status":"COMPLETE","results":[{"id":"1000001","properties":{"email":"p1@example.com"}}],"numErrors":1,"errors":[{"status":"error","category":"INTERNAL_ERROR","message":"try again"}]}`}},
			calls:  1,
			err: func(err error) bool {
				return err != nil && !errors.Is(err, connectors.ErrPermanent) && strings.Contains(err.Error(), "INTERNAL_ERROR")
			},
		},
		{
			name:    "an id left out of the answer is skipped",
			ids:     ids(1, 2),
			script:  []sandbox.Answer{{Status: http.StatusOK, Body: `{"status":"COMPLETE","results":[{"id":"1000001","properties":{"email":"p1@example.com"}}]}`}},
			calls:   1,
			inputs:  []int{2},
			emails:  1,
			skipped: []string{"signal 2: contact not in HubSpot's answer"},
		},
		{
			name:   "unreadable answer: transient error",
			ids:    ids(1, 2),
			script: []sandbox.Answer{{Status: http.StatusOK, Body: `<html>`}},
			calls:  1,
			err:    func(err error) bool { return err != nil && !errors.Is(err, connectors.ErrPermanent) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb := contactsFake(t, 300, extra)
			s := fakeSource(t, sb)
			sb.Script(sandbox.HubSpot, tt.script...)
			b := signals(tt.ids...)
			skipped, err := s.Resolve(context.Background(), b)
			if got := sb.calls(); got != tt.calls {
				t.Errorf("%d calls, want %d", got, tt.calls)
			}
			if tt.err != nil {
				if !tt.err(err) {
					t.Fatalf("err = %v", err)
				}
				if len(b.Signals) != len(tt.ids) {
					t.Fatalf("batch changed on error")
				}
				for _, sig := range b.Signals {
					if sig.Subject.Email != "" {
						t.Fatalf("batch changed on error: %+v", sig)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkCalls(t, sb)
			var inputs []int
			for _, c := range sb.Calls(sandbox.HubSpot) {
				inputs = append(inputs, len(c.ContactIDs))
			}
			slices.Sort(inputs) // calls run in parallel
			slices.Sort(tt.inputs)
			if fmt.Sprint(inputs) != fmt.Sprint(tt.inputs) {
				t.Errorf("inputs per call %v, want %v", inputs, tt.inputs)
			}
			if strings.Join(skipped, "|") != strings.Join(tt.skipped, "|") {
				t.Errorf("skipped %q, want %q", skipped, tt.skipped)
			}
			n := 0
			for _, sig := range b.Signals {
				if sig.Subject.Email == "" || !strings.HasPrefix(sig.Subject.ExternalID, ExternalIDPrefix) {
					t.Errorf("unresolved signal kept: %+v", sig.Subject)
				}
				n++
			}
			if n != tt.emails {
				t.Errorf("%d signals resolved, want %d", n, tt.emails)
			}
		})
	}
}

func TestResolveMerged(t *testing.T) {
	sb := contactsFake(t, 0, map[string]json.RawMessage{
		"8": json.RawMessage(`{"id":"8","properties":{"email":" m@example.com ","hs_object_id":"8","hs_merged_object_ids":"81;82"}}`),
	})
	s := fakeSource(t, sb)
	b := signals("81", "82")
	if _, err := s.Resolve(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	for _, sig := range b.Signals {
		if sig.Subject.Email != "m@example.com" {
			t.Errorf("merged id: %+v", sig.Subject)
		}
	}
	if b.Signals[0].Subject.ExternalID != "hubspot:contact:81" {
		t.Errorf("the id asked for is kept: %+v", b.Signals[0].Subject)
	}
}

func TestResolveCache(t *testing.T) {
	sb := contactsFake(t, 300, nil)
	now := time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)
	clock := now
	_, cfg := fixture(t, sb.URL)
	deps := testHTTP()
	deps.Now = func() time.Time { return clock }
	s := newSource(t, cfg, deps)
	resolve := func(ids ...string) {
		t.Helper()
		if _, err := s.Resolve(context.Background(), signals(ids...)); err != nil {
			t.Fatal(err)
		}
	}

	// A cache hit makes no call; a mix asks only for the misses.
	resolve(ids(1, 150)...)
	if sb.calls() != 2 {
		t.Fatalf("%d calls", sb.calls())
	}
	resolve(ids(1, 150)...)
	if sb.calls() != 2 {
		t.Errorf("cache hit made a call: %d calls", sb.calls())
	}
	resolve(ids(100, 60)...) // 1000100…1000159: 1000151… are new
	if sb.calls() != 3 || sb.count(ids(151, 1)[0]) != 1 || sb.count(ids(150, 1)[0]) != 1 {
		t.Errorf("misses: %d calls %+v", sb.calls(), sb.Calls(sandbox.HubSpot)[2].ContactIDs)
	}
	if c := sb.Calls(sandbox.HubSpot)[2]; len(c.ContactIDs) != 9 {
		t.Errorf("third call asked for %d ids, want the 9 misses", len(c.ContactIDs))
	}

	// After the TTL the email is read again (it may have changed).
	clock = now.Add(cacheTTL + time.Second)
	resolve(ids(1, 1)...)
	if sb.count(ids(1, 1)[0]) != 2 {
		t.Errorf("expired entry not read again")
	}

	// The cache is bounded: the least recently used contacts are evicted
	// and asked for again.
	s.cache = newContactCache(5, time.Hour)
	resolve(ids(1, 20)...)
	if s.cache.len() != 5 {
		t.Errorf("cache holds %d entries, bound 5", s.cache.len())
	}
	before := sb.calls()
	resolve(ids(16, 5)...) // the 5 most recent
	if sb.calls() != before {
		t.Errorf("recent entries evicted")
	}
	resolve(ids(1, 1)...)
	if sb.calls() != before+1 {
		t.Errorf("evicted entry not asked for again")
	}
}

// TestResolveTenThousand counts the calls resolving 10,000 contacts takes:
// 100 (it took 10,000 with one GET per contact).
func TestResolveTenThousand(t *testing.T) {
	sb := contactsFake(t, 10000, nil)
	s := fakeSource(t, sb)
	b := signals(ids(1, 10000)...)
	skipped, err := s.Resolve(context.Background(), b)
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	checkCalls(t, sb)
	if sb.calls() != 100 {
		t.Errorf("%d calls for 10,000 contacts, want 100", sb.calls())
	}
	if b.Signals[9999].Subject.Email != "p10000@example.com" {
		t.Errorf("last signal %+v", b.Signals[9999].Subject)
	}
	t.Logf("10,000 contacts: %d calls", sb.calls())
}

// BenchmarkResolveTenThousand resolves 10,000 uncached contacts per op and
// reports the calls made.
func BenchmarkResolveTenThousand(b *testing.B) {
	sb := contactsFake(b, 10000, nil)
	all := ids(1, 10000)
	for b.Loop() {
		b.StopTimer()
		s := fakeSource(b, sb)
		batch := signals(all...)
		sb.ResetCalls()
		b.StartTimer()
		if _, err := s.Resolve(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sb.calls()), "calls/op")
}

func TestParseBatchRead(t *testing.T) {
	asked := []string{"1", "2", "3", "4"}
	tests := []struct {
		name string
		body string
		want map[string]answer
		err  string
	}{
		{
			name: "all found",
			body: `{"status":"COMPLETE","results":[{"id":"1","properties":{"email":"a@x.io"}},{"id":2,"properties":{"email":null}}]}`,
			want: map[string]answer{"1": {email: "a@x.io", found: true}, "2": {found: true}},
		},
		{
			name: "207: missing ids",
			body: `{"results":[{"id":"1","properties":{"email":"a@x.io"}}],"numErrors":1,"errors":[{"status":"error","category":"OBJECT_NOT_FOUND","context":{"ids":["2","3",4,"99"]}}]}`,
			want: map[string]answer{"1": {email: "a@x.io", found: true}, "2": {gone: true}, "3": {gone: true}, "4": {gone: true}},
		},
		{
			name: "merged: the survivor answers for the ids merged into it",
			body: `{"results":[{"id":"50","properties":{"email":"m@x.io","hs_merged_object_ids":"2; 3;x"}}]}`,
			want: map[string]answer{"2": {email: "m@x.io", found: true}, "3": {email: "m@x.io", found: true}},
		},
		{
			name: "a result wins over an error",
			body: `{"results":[{"id":"1","properties":{"email":"a@x.io"}}],"errors":[{"category":"OBJECT_NOT_FOUND","context":{"ids":["1"]}}]}`,
			want: map[string]answer{"1": {email: "a@x.io", found: true}},
		},
		{
			name: "ids not asked for are ignored",
			body: `{"results":[{"id":"77","properties":{"email":"z@x.io"}}]}`,
			want: map[string]answer{},
		},
		{name: "other error category", body: `{"results":[],"errors":[{"category":"RATE_LIMITS"},{"category":"INTERNAL_ERROR"},{"category":"RATE_LIMITS"}]}`, err: "INTERNAL_ERROR, RATE_LIMITS for"},
		{name: "no results", body: `{"status":"COMPLETE"}`, err: "no \"results\""},
		{name: "null", body: `null`, err: "no \"results\""},
		{name: "not an object", body: `[1]`, err: "unreadable"},
		{name: "bad properties", body: `{"results":[{"id":"1","properties":"x"}]}`, err: "unreadable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBatchRead([]byte(tt.body), asked)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseBatchRead(f *testing.F) {
	f.Add([]byte(`{"status":"COMPLETE","results":[{"id":"1","properties":{"email":"a@x.io","hs_object_id":"1"}}]}`), "1,2")
	f.Add([]byte(`{"results":[],"numErrors":1,"errors":[{"status":"error","category":"OBJECT_NOT_FOUND","context":{"ids":["2"]}}]}`), "1,2")
	f.Add([]byte(`{"results":[{"id":"9","properties":{"email":"m@x.io","hs_merged_object_ids":"1;2"}}]}`), "1,2,9")
	f.Add([]byte(`{"results":[{"id":1e3}],"errors":[{"category":"INTERNAL_ERROR","context":{"ids":"x"}}]}`), "1000")
	f.Fuzz(func(t *testing.T, body []byte, list string) {
		asked := strings.Split(list, ",")
		got, err := parseBatchRead(body, asked)
		if err != nil {
			if got != nil {
				t.Fatalf("answers with an error: %v", got)
			}
			if !strings.HasPrefix(err.Error(), "hubspot: contact lookup: ") {
				t.Fatalf("err %v", err)
			}
			return
		}
		in := map[string]bool{}
		for _, id := range asked {
			in[id] = true
		}
		for id, a := range got {
			if !in[id] || intText(id) != id {
				t.Fatalf("answer for %q, not asked for", id)
			}
			if a.found == a.gone {
				t.Fatalf("%s: found %v gone %v", id, a.found, a.gone)
			}
			if a.email != strings.TrimSpace(a.email) || (a.gone && a.email != "") {
				t.Fatalf("%s: email %q", id, a.email)
			}
		}
	})
}

// TestResolveOneCallFails: with several calls, one failing fails the whole
// Resolve and leaves the batch unchanged; what the others read is cached,
// so the retry asks only for the rest.
func TestResolveOneCallFails(t *testing.T) {
	sb := contactsFake(t, 300, nil)
	s := fakeSource(t, sb)
	sb.Script(sandbox.HubSpot, sandbox.StatusOnly(http.StatusUnauthorized))
	b := signals(ids(1, 300)...)
	if _, err := s.Resolve(context.Background(), b); !errors.Is(err, connectors.ErrPermanent) {
		t.Fatalf("err = %v, want ErrPermanent", err)
	}
	for _, sig := range b.Signals {
		if sig.Subject.Email != "" {
			t.Fatalf("batch changed on error")
		}
	}
	// Calls cancelled by the failure may still be finishing at the fake.
	for n := -1; n != sb.calls(); {
		n = sb.calls()
		time.Sleep(50 * time.Millisecond)
	}
	cached := s.cache.len()
	if cached > 200 || cached%100 != 0 {
		t.Errorf("cached %d contacts: want those of the calls that succeeded", cached)
	}
	sb.ResetCalls()
	if _, err := s.Resolve(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if want := (300 - cached) / 100; sb.calls() != want {
		t.Errorf("retry made %d calls, want %d", sb.calls(), want)
	}
	if b.Signals[299].Subject.Email != "p300@example.com" {
		t.Errorf("%+v", b.Signals[299].Subject)
	}
}
