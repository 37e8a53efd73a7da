package fakeprovider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mailchimp"
	"github.com/consentsync/consentsync/connectors/sendgrid"
	"github.com/consentsync/consentsync/consent"
)

const (
	sgKey  = "SG.bench-key"
	mcKey  = "bench-key-us21"
	mcList = "a6b5da1054"
)

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func do(t *testing.T, method, url string, hdr map[string]string, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &a.body); err != nil && strings.Contains(resp.Header.Get("Content-Type"), "json") {
			t.Fatalf("%s %s: answer is not a JSON object: %q", method, url, b)
		}
	}
	return a
}

func emails(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u%d@example.com", i)
	}
	return out
}

func sgBody(addrs []string) string {
	b, _ := json.Marshal(map[string]any{"recipient_emails": addrs})
	return string(b)
}

func mcBody(addrs []string) string {
	var m []map[string]string
	for _, a := range addrs {
		m = append(m, map[string]string{"email_address": a, "status": "unsubscribed", "status_if_new": "unsubscribed"})
	}
	b, _ := json.Marshal(map[string]any{"members": m, "update_existing": true})
	return string(b)
}

func sendgridErr(a answer) string {
	errs, _ := a.body["errors"].([]any)
	if len(errs) != 1 {
		return ""
	}
	e, _ := errs[0].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func TestContract(t *testing.T) {
	sg := NewSendGrid(sgKey)
	defer sg.Close()
	mc := NewMailchimp(mcKey, mcList)
	defer mc.Close()
	bearer := func(k string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + k, "Content-Type": "application/json"}
	}
	basic := func(k string) map[string]string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth("consentsync", k)
		return map[string]string{"Authorization": r.Header.Get("Authorization"), "Content-Type": "application/json"}
	}
	sgGlobal := sg.URL + "/v3/asm/suppressions/global"
	mcBatch := mc.URL + "/3.0/lists/" + mcList

	tests := []struct {
		name   string
		method string
		url    string
		hdr    map[string]string
		body   string
		status int
		check  func(t *testing.T, a answer)
	}{
		{"sendgrid wrong key", "POST", sgGlobal, bearer("SG.other"), sgBody(emails(1)), 401, func(t *testing.T, a answer) {
			if sendgridErr(a) != "authorization required" {
				t.Errorf("body %v: want SendGrid's errors[] with 'authorization required'", a.body)
			}
		}},
		{"sendgrid no auth", "POST", sgGlobal, map[string]string{}, sgBody(emails(1)), 401, nil},
		{"sendgrid basic auth refused", "POST", sgGlobal, basic(sgKey), sgBody(emails(1)), 401, nil},
		{"sendgrid global add", "POST", sgGlobal, bearer(sgKey), sgBody(emails(2)), 201, func(t *testing.T, a answer) {
			if got, _ := a.body["recipient_emails"].([]any); len(got) != 2 {
				t.Errorf("answer %v: want both addresses echoed", a.body)
			}
		}},
		{"sendgrid group add", "POST", sg.URL + "/v3/asm/groups/42/suppressions", bearer(sgKey), sgBody(emails(1)), 201, nil},
		{"sendgrid at batch limit", "POST", sgGlobal, bearer(sgKey), sgBody(emails(SendGridMaxRecipients)), 201, nil},
		{"sendgrid over batch limit", "POST", sgGlobal, bearer(sgKey), sgBody(emails(SendGridMaxRecipients + 1)), 400, func(t *testing.T, a answer) {
			if !strings.Contains(sendgridErr(a), "at most 1000") {
				t.Errorf("body %v: want SendGrid's errors[] naming the limit", a.body)
			}
		}},
		{"sendgrid empty list", "POST", sgGlobal, bearer(sgKey), `{"recipient_emails":[]}`, 400, nil},
		{"sendgrid bad json", "POST", sgGlobal, bearer(sgKey), `{`, 400, nil},
		{"sendgrid invalid address", "POST", sgGlobal, bearer(sgKey), sgBody([]string{"not-an-address"}), 400, nil},
		{"sendgrid unknown path", "POST", sg.URL + "/v3/mail/send", bearer(sgKey), "{}", 404, nil},
		{"sendgrid delete absent", "DELETE", sgGlobal + "/nobody@example.com", bearer(sgKey), "", 204, nil},
		{"mailchimp wrong key", "POST", mcBatch, basic("other-us21"), mcBody(emails(1)), 401, func(t *testing.T, a answer) {
			if a.body["title"] != "API Key Invalid" || a.header.Get("Content-Type") != problemType {
				t.Errorf("answer %v %v: want Mailchimp's problem detail 'API Key Invalid'", a.header, a.body)
			}
		}},
		{"mailchimp bearer refused", "POST", mcBatch, bearer(mcKey), mcBody(emails(1)), 401, nil},
		{"mailchimp batch", "POST", mcBatch, basic(mcKey), mcBody(emails(3)), 200, func(t *testing.T, a answer) {
			if a.body["total_created"] != float64(3) || a.body["error_count"] != float64(0) {
				t.Errorf("answer %v: want 3 created, no error", a.body)
			}
		}},
		{"mailchimp batch again updates", "POST", mcBatch, basic(mcKey), mcBody(emails(3)), 200, func(t *testing.T, a answer) {
			if a.body["total_updated"] != float64(3) {
				t.Errorf("answer %v: want 3 updated", a.body)
			}
		}},
		{"mailchimp over batch limit", "POST", mcBatch, basic(mcKey), mcBody(emails(MailchimpMaxMembers + 1)), 400, func(t *testing.T, a answer) {
			errs, _ := a.body["errors"].([]any)
			if a.body["title"] != "Invalid Resource" || len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), "maximum is 500") {
				t.Errorf("answer %v: want an Invalid Resource problem naming the limit", a.body)
			}
		}},
		{"mailchimp other list", "POST", mc.URL + "/3.0/lists/zzz", basic(mcKey), mcBody(emails(1)), 404, func(t *testing.T, a answer) {
			if a.body["title"] != "Resource Not Found" {
				t.Errorf("answer %v", a.body)
			}
		}},
		{"mailchimp member PUT", "PUT", mcBatch + "/members/" + answerMember("", "u7@example.com", "").ID, basic(mcKey),
			`{"email_address":"u7@example.com","status":"unsubscribed","status_if_new":"unsubscribed"}`, 200, nil},
		{"mailchimp member PUT wrong hash", "PUT", mcBatch + "/members/0123", basic(mcKey),
			`{"email_address":"u7@example.com","status":"unsubscribed"}`, 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, tc.method, tc.url, tc.hdr, tc.body)
			if a.status != tc.status {
				t.Fatalf("HTTP %d %v, want %d", a.status, a.body, tc.status)
			}
			if tc.check != nil {
				tc.check(t, a)
			}
		})
	}
	// Global 2 + group 1 + 1000 at the limit; refused calls log nothing.
	if got := len(sg.Addresses()); got != SendGridMaxRecipients {
		t.Errorf("sendgrid addresses %d, want %d", got, SendGridMaxRecipients)
	}
	if got := len(sg.Received()["u0@example.com"]); got != 3 {
		t.Errorf("u0 received %d times, want 3 (global, group, limit batch)", got)
	}
	if sg.Calls() != 12 || sg.Accepted() != 4 { // global, group, at the limit, DELETE
		t.Errorf("sendgrid calls %d accepted %d, want 12 and 4", sg.Calls(), sg.Accepted())
	}
	if got := len(mc.Received()["u0@example.com"]); got != 2 {
		t.Errorf("mailchimp u0 received %d times, want 2", got)
	}
}

func TestTooManyHeaders(t *testing.T) {
	sg := NewSendGrid(sgKey)
	defer sg.Close()
	mc := NewMailchimp(mcKey, mcList)
	defer mc.Close()
	sg.SetFault(Fault{Kind: TooMany, Reset: 3 * time.Second})
	mc.SetFault(Fault{Kind: TooMany})

	before := time.Now()
	a := do(t, "POST", sg.URL+"/v3/asm/suppressions/global", map[string]string{"Authorization": "Bearer " + sgKey}, sgBody(emails(1)))
	if a.status != 429 || sendgridErr(a) != "too many requests" {
		t.Fatalf("sendgrid: HTTP %d %v, want 429 with errors[]", a.status, a.body)
	}
	reset, err := strconv.ParseInt(a.header.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil {
		t.Fatalf("X-RateLimit-Reset %q: %v", a.header.Get("X-RateLimit-Reset"), err)
	}
	if lo, hi := before.Add(3*time.Second).Unix(), time.Now().Add(3*time.Second).Unix()+1; reset < lo || reset > hi {
		t.Errorf("X-RateLimit-Reset %d, want epoch seconds in [%d, %d]", reset, lo, hi)
	}
	if a.header.Get("X-RateLimit-Remaining") != "0" || a.header.Get("X-RateLimit-Limit") == "" || a.header.Get("Retry-After") != "" {
		t.Errorf("headers %v: want Limit, Remaining 0, no Retry-After", a.header)
	}

	r, _ := http.NewRequest("POST", mc.URL+"/3.0/lists/"+mcList, strings.NewReader(mcBody(emails(1))))
	r.SetBasicAuth("x", mcKey)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("X-RateLimit-Reset") != "" || resp.Header.Get("Retry-After") != "" {
		t.Errorf("mailchimp: HTTP %d %v, want 429 without rate headers", resp.StatusCode, resp.Header)
	}

	// Wrong key still gets 401 under a fault.
	if a := do(t, "POST", sg.URL+"/v3/asm/suppressions/global", map[string]string{"Authorization": "Bearer x"}, sgBody(emails(1))); a.status != 401 {
		t.Errorf("bad key under fault: HTTP %d, want 401", a.status)
	}

	sg.SetFault(Fault{Kind: Unavailable, RetryAfter: 1500 * time.Millisecond})
	a = do(t, "POST", sg.URL+"/v3/asm/suppressions/global", map[string]string{"Authorization": "Bearer " + sgKey}, sgBody(emails(1)))
	if a.status != 503 || a.header.Get("Retry-After") != "2" {
		t.Errorf("unavailable: HTTP %d Retry-After %q, want 503 and 2", a.status, a.header.Get("Retry-After"))
	}
	if len(sg.Addresses()) != 0 {
		t.Errorf("addresses %v logged while refusing", sg.Addresses())
	}
}

func TestHang(t *testing.T) {
	sg := NewSendGrid(sgKey)
	defer sg.Close()
	sg.SetFault(Fault{Kind: Hang})
	post := func(ctx context.Context, addr string) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", sg.URL+"/v3/asm/suppressions/global", strings.NewReader(sgBody([]string{addr})))
		req.Header.Set("Authorization", "Bearer "+sgKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// The client gives up: nothing applied.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	start := time.Now()
	_, err := post(ctx, "gone@example.com")
	cancel()
	if err == nil || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("hang answered (err %v after %v)", err, time.Since(start))
	}
	// Cleared while waiting: answered normally.
	done := make(chan int, 1)
	go func() {
		st, _ := post(context.Background(), "kept@example.com")
		done <- st
	}()
	select {
	case st := <-done:
		t.Fatalf("answered %d while hanging", st)
	case <-time.After(200 * time.Millisecond):
	}
	sg.SetFault(Fault{})
	select {
	case st := <-done:
		if st != 201 {
			t.Errorf("after clearing: HTTP %d, want 201", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still hanging after the fault was cleared")
	}
	deadline := time.Now().Add(2 * time.Second)
	for sg.Calls() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := sg.Addresses(); len(got) != 1 || got[0] != "kept@example.com" {
		t.Errorf("addresses %v, want only kept@example.com", got)
	}
	log := sg.CallLog()
	if len(log) != 2 || log[0].Status != 0 || log[0].Fault != Hang {
		t.Errorf("call log %+v: want the abandoned call first with status 0", log)
	}
}

func TestStormAndSlow(t *testing.T) {
	sg := NewSendGrid(sgKey)
	defer sg.Close()
	sg.Storm(Phase{Fault{Kind: TooMany, Reset: time.Second}, 150 * time.Millisecond}, Phase{Fault{Kind: Unavailable}, 150 * time.Millisecond})
	hdr := map[string]string{"Authorization": "Bearer " + sgKey}
	url := sg.URL + "/v3/asm/suppressions/global"
	if a := do(t, "POST", url, hdr, sgBody(emails(1))); a.status != 429 {
		t.Errorf("storm phase 1: HTTP %d, want 429", a.status)
	}
	time.Sleep(170 * time.Millisecond)
	if a := do(t, "POST", url, hdr, sgBody(emails(1))); a.status != 503 {
		t.Errorf("storm phase 2: HTTP %d, want 503", a.status)
	}
	time.Sleep(170 * time.Millisecond)
	if a := do(t, "POST", url, hdr, sgBody(emails(1))); a.status != 201 {
		t.Errorf("after storm: HTTP %d, want 201", a.status)
	}
	sg.SetFault(Fault{Kind: Slow, Delay: 100 * time.Millisecond})
	start := time.Now()
	if a := do(t, "POST", url, hdr, sgBody(emails(1))); a.status != 201 || time.Since(start) < 100*time.Millisecond {
		t.Errorf("slow: HTTP %d after %v, want 201 after ≥100ms", a.status, time.Since(start))
	}
	if got := len(sg.Received()["u0@example.com"]); got != 2 {
		t.Errorf("u0 received %d times, want 2 (doubles kept)", got)
	}
}

func TestMailchimpConcurrencyLimit(t *testing.T) {
	mc := NewMailchimp(mcKey, mcList)
	defer mc.Close()
	mc.SetFault(Fault{Kind: Slow, Delay: 300 * time.Millisecond})
	codes := make(chan int, MailchimpMaxConcurrent+2)
	for i := 0; i < MailchimpMaxConcurrent+2; i++ {
		go func() {
			r, _ := http.NewRequest("POST", mc.URL+"/3.0/lists/"+mcList, strings.NewReader(mcBody(emails(1))))
			r.SetBasicAuth("x", mcKey)
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	n := map[int]int{}
	for i := 0; i < MailchimpMaxConcurrent+2; i++ {
		n[<-codes]++
	}
	if n[200] != MailchimpMaxConcurrent || n[429] != 2 {
		t.Errorf("answers %v, want %d×200 and 2×429", n, MailchimpMaxConcurrent)
	}
}

// TestConnectors drives consentsync's own destinations against the fakes:
// what they send must be accepted, and big batches split under the limits.
func TestConnectors(t *testing.T) {
	sg := NewSendGrid(sgKey)
	defer sg.Close()
	mc := NewMailchimp(mcKey, mcList)
	defer mc.Close()
	deps := connectors.Deps{HTTP: connectors.NewHTTPClient(connectors.HTTPOptions{Timeout: 5 * time.Second})}
	sgd, err := sendgrid.NewDestination(config.Destination{Name: "sg", Kind: "sendgrid", APIKey: sgKey, BaseURL: sg.URL}, deps)
	if err != nil {
		t.Fatal(err)
	}
	mcd, err := mailchimp.NewDestination(config.Destination{Name: "mc", Kind: "mailchimp", APIKey: mcKey, Options: &mailchimp.Options{ListID: mcList}, BaseURL: mc.URL}, deps)
	if err != nil {
		t.Fatal(err)
	}
	var batch []connectors.Suppression
	for i, e := range emails(1200) {
		batch = append(batch, connectors.Suppression{ID: int64(i + 1), Email: e, Channel: consent.ChannelEmail, Brand: "acme", Purpose: consent.PurposeMarketing})
	}
	for _, d := range []connectors.Destination{sgd, mcd} {
		res, err := d.Push(context.Background(), batch)
		if err != nil {
			t.Fatalf("push: %v", err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("result %d: %v", r.ID, r.Err)
			}
		}
	}
	if sg.Calls() != 2 || len(sg.Addresses()) != 1200 {
		t.Errorf("sendgrid: %d calls, %d addresses; want 2 and 1200", sg.Calls(), len(sg.Addresses()))
	}
	if mc.Calls() != 3 || len(mc.Addresses()) != 1200 {
		t.Errorf("mailchimp: %d calls, %d addresses; want 3 and 1200", mc.Calls(), len(mc.Addresses()))
	}
}

func TestControlAPI(t *testing.T) {
	sg := NewSendGrid(sgKey)
	defer sg.Close()
	if err := SetRemoteFault(context.Background(), sg.URL, Fault{Kind: TooMany, Reset: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if f := sg.Fault(); f.Kind != TooMany || f.Reset != 2*time.Second {
		t.Errorf("fault %+v after remote set", f)
	}
	if a := do(t, "PUT", sg.URL+"/_fake/fault", nil, `{"kind":"boom"}`); a.status != 400 {
		t.Errorf("unknown kind: HTTP %d, want 400", a.status)
	}
	if sg.Calls() != 0 {
		t.Errorf("control calls counted: %d", sg.Calls())
	}
}
