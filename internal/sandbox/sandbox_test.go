package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t *testing.T, srv *httptest.Server, method, path string, auth func(*http.Request), body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	return a
}

func bearerAuth(k string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+k) }
}

func basicAuth(k string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth("anystring", k) }
}

func start(t *testing.T, opts ...Option) (*Sandbox, *httptest.Server) {
	t.Helper()
	sb := New(opts...)
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return sb, srv
}

func TestHubSpot(t *testing.T) {
	contacts, err := FixtureContacts()
	if err != nil {
		t.Fatal(err)
	}
	if len(contacts) == 0 {
		t.Fatal("fixtures carry HubSpot contacts")
	}
	sb, srv := start(t, WithHubSpotContacts(contacts))
	a := do(t, srv, "GET", "/hubspot/crm/v3/objects/contacts/501?properties=email", bearerAuth(DefaultHubSpotToken), "")
	if a.status != 200 || a.body["id"] != "501" {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if props, _ := a.body["properties"].(map[string]any); props["email"] != "Lena.Martin@Example.com" {
		t.Fatalf("properties %v", a.body)
	}
	a = do(t, srv, "GET", "/hubspot/crm/v3/objects/contacts/999", bearerAuth(DefaultHubSpotToken), "")
	if a.status != 404 || a.body["category"] != "OBJECT_NOT_FOUND" || a.body["status"] != "error" || a.body["message"] == nil {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	for _, auth := range []func(*http.Request){nil, bearerAuth("wrong"), basicAuth(DefaultHubSpotToken)} {
		a = do(t, srv, "GET", "/hubspot/crm/v3/objects/contacts/501", auth, "")
		if a.status != 401 || a.body["category"] != "INVALID_AUTHENTICATION" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	}
	a = do(t, srv, "POST", "/hubspot/crm/v3/objects/contacts/batch/read", bearerAuth(DefaultHubSpotToken), `{"inputs":[{"id":"501"},{"id":"999"}],"properties":["email"]}`)
	if a.status != 207 || len(a.body["results"].([]any)) != 1 || a.body["numErrors"] != float64(1) {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	calls := sb.Calls(HubSpot)
	if len(calls) != 6 || !calls[0].AuthOK || calls[2].AuthOK || calls[0].ContactIDs[0] != "501" || len(calls[5].ContactIDs) != 2 {
		t.Fatalf("calls %+v", calls)
	}
	if calls[3].Header.Get("Authorization") != "" {
		t.Fatal("recorded credentials")
	}
}

func TestSendGrid(t *testing.T) {
	sb, srv := start(t)
	path := "/sendgrid/v3/asm/suppressions/global"
	key := bearerAuth(DefaultSendGridKey)

	a := do(t, srv, "POST", path, bearerAuth("SG.wrong"), `{"recipient_emails":["a@example.com"]}`)
	if a.status != 401 || !strings.Contains(a.raw, `"message":"authorization required"`) || !strings.Contains(a.raw, `"field":null`) {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	for _, body := range []string{``, `{`, `{}`, `{"recipient_emails":[]}`, `{"recipient_emails":"a@example.com"}`, `{"recipient_emails":[1]}`, `{"recipient_emails":["nope"]}`} {
		a = do(t, srv, "POST", path, key, body)
		errs, _ := a.body["errors"].([]any)
		if a.status != 400 || len(errs) != 1 {
			t.Fatalf("body %q: %d %s", body, a.status, a.raw)
		}
	}
	a = do(t, srv, "POST", path, key, `{"recipient_emails":["A@example.com","b@example.com"]}`)
	if a.status != 201 || a.raw != `{"recipient_emails":["A@example.com","b@example.com"]}` {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	a = do(t, srv, "POST", path, key, `{"recipient_emails":["a@example.com"]}`)
	if a.status != 201 {
		t.Fatalf("repeat: %d", a.status)
	}
	if got := strings.Join(sb.SendGridSuppressed(), ","); got != "A@example.com,b@example.com" {
		t.Fatal(got)
	}
	a = do(t, srv, "GET", path+"/a@example.com", key, "")
	if a.status != 200 || a.body["recipient_email"] != "A@example.com" {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if a = do(t, srv, "DELETE", path+"/b@example.com", key, ""); a.status != 204 {
		t.Fatal(a.status)
	}
	if a = do(t, srv, "DELETE", path+"/b@example.com", key, ""); a.status != 204 {
		t.Fatal("absent global suppression: 204 too")
	}
	if a = do(t, srv, "GET", path+"/b@example.com", key, ""); a.raw != "{}" {
		t.Fatal(a.raw)
	}
	calls := sb.Calls(SendGrid)
	if calls[0].AuthOK || !calls[len(calls)-1].AuthOK || calls[8].Status != 201 || strings.Join(calls[8].Emails, ",") != "A@example.com,b@example.com" {
		t.Fatalf("calls %+v", calls)
	}
}

func TestMailchimp(t *testing.T) {
	sb, srv := start(t, WithMailchimpCompliance("Stuck@example.com"), WithMailchimpMember("L1", "old@example.com", "subscribed"))
	path := "/mailchimp/3.0/lists/L1"
	key := basicAuth(DefaultMailchimpKey)

	for _, auth := range []func(*http.Request){nil, basicAuth("wrong-us21"), bearerAuth(DefaultMailchimpKey)} {
		a := do(t, srv, "POST", path, auth, `{"members":[]}`)
		if a.status != 401 || a.body["title"] != "API Key Invalid" || a.body["status"] != float64(401) || a.body["type"] == nil || a.body["instance"] == nil || a.body["detail"] == nil {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	}
	var many []string
	for i := range MailchimpMaxMembers + 1 {
		many = append(many, fmt.Sprintf(`{"email_address":"p%d@example.com","status":"unsubscribed"}`, i))
	}
	for _, body := range []string{`nope`, `{}`, `{"members":[` + strings.Join(many, ",") + `]}`} {
		a := do(t, srv, "POST", path, key, body)
		if a.status != 400 || a.body["status"] != float64(400) || a.body["title"] == nil || a.body["detail"] == nil || !strings.HasPrefix(a.header.Get("Content-Type"), "application/problem+json") {
			t.Fatalf("%d %s", a.status, a.raw[:min(len(a.raw), 300)])
		}
	}
	a := do(t, srv, "POST", path, key, `{"members":[
		{"email_address":"new@example.com","status":"unsubscribed","status_if_new":"unsubscribed"},
		{"email_address":"OLD@example.com","status":"unsubscribed","status_if_new":"unsubscribed"},
		{"email_address":"stuck@example.com","status":"unsubscribed","status_if_new":"unsubscribed"},
		{"email_address":"x@example.com","status":"bogus"}],"update_existing":true}`)
	if a.status != 200 || a.body["total_created"] != float64(1) || a.body["total_updated"] != float64(1) || a.body["error_count"] != float64(2) {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	errs := a.body["errors"].([]any)
	if e := errs[0].(map[string]any); e["email_address"] != "stuck@example.com" || !strings.Contains(e["error"].(string), "compliance state") || e["error_code"] == nil {
		t.Fatalf("errors %v", errs)
	}
	if sb.MailchimpStatus("L1", "old@example.com") != "unsubscribed" || sb.MailchimpStatus("L1", "NEW@example.com") != "unsubscribed" || sb.MailchimpStatus("L1", "stuck@example.com") != "" {
		t.Fatalf("members %+v", sb.MailchimpMembers("L1"))
	}
	a = do(t, srv, "POST", path, key, `{"members":[{"email_address":"old@example.com","status":"subscribed"}],"update_existing":false}`)
	if errs := a.body["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["error_code"] != "ERROR_CONTACT_EXISTS" {
		t.Fatalf("%s", a.raw)
	}
	snap := sb.Snapshot()
	if len(snap.MailchimpMembers["L1"]) != 2 || snap.MailchimpMembers["L1"][0].EmailAddress != "new@example.com" {
		t.Fatalf("snapshot %+v", snap)
	}
	c := sb.Calls(Mailchimp)
	if len(c) != 8 || len(c[6].Members) != 4 || c[6].Members[0].StatusIfNew != "unsubscribed" {
		t.Fatalf("calls %d", len(c))
	}
}

func TestScript(t *testing.T) {
	sb, srv := start(t)
	sb.Script(SendGrid, TooManyRequestsSeconds(7), TooManyRequestsUntil(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)),
		TooManyRequestsReset(time.Unix(1900000000, 0)), Unavailable(), BadRequest())
	sb.Script(Mailchimp, MailchimpThrottled())
	path := "/sendgrid/v3/asm/suppressions/global"
	body := `{"recipient_emails":["a@example.com"]}`

	// A bad key is refused before any script is used.
	if a := do(t, srv, "POST", path, bearerAuth("bad"), body); a.status != 401 {
		t.Fatal(a.status)
	}
	want := []struct {
		status int
		header string
		value  string
	}{
		{429, "Retry-After", "7"},
		{429, "Retry-After", "Wed, 02 Jan 2030 03:04:05 GMT"},
		{429, "X-RateLimit-Reset", "1900000000"},
		{503, "", ""},
		{400, "", ""},
		{201, "", ""},
	}
	for i, w := range want {
		a := do(t, srv, "POST", path, bearerAuth(DefaultSendGridKey), body)
		if a.status != w.status || (w.header != "" && a.header.Get(w.header) != w.value) {
			t.Fatalf("answer %d: %d %v", i, a.status, a.header)
		}
		if w.status >= 400 {
			if errs, _ := a.body["errors"].([]any); len(errs) != 1 {
				t.Fatalf("answer %d: SendGrid error body wanted, got %s", i, a.raw)
			}
		}
	}
	if len(sb.SendGridSuppressed()) != 1 {
		t.Fatal("scripted calls must not change state; the last one must")
	}
	calls := sb.Calls(SendGrid)
	if len(calls) != 7 || calls[0].Scripted || !calls[1].Scripted || calls[6].Scripted || calls[1].Status != 429 {
		t.Fatalf("calls %+v", calls)
	}
	a := do(t, srv, "POST", "/mailchimp/3.0/lists/L", basicAuth(DefaultMailchimpKey), `{"members":[]}`)
	if a.status != 403 || a.body["title"] != "Too Many Requests" {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	// HubSpot-shaped scripted error.
	sb.Script(HubSpot, TooManyRequestsSeconds(1))
	a = do(t, srv, "GET", "/hubspot/crm/v3/objects/contacts/1", bearerAuth(DefaultHubSpotToken), "")
	if a.status != 429 || a.body["category"] != "RATE_LIMITS" {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	sb.ResetCalls()
	if sb.CallCount("") != 0 {
		t.Fatal("reset")
	}
}

func TestUnknownPaths(t *testing.T) {
	sb, srv := start(t)
	for _, p := range []string{"/sendgrid/v3/nope", "/mailchimp/3.0/lists/L/members/x", "/hubspot/nope", "/elsewhere"} {
		if a := do(t, srv, "GET", p, nil, ""); a.status != 404 {
			t.Fatalf("%s: %d", p, a.status)
		}
	}
	if sb.CallCount("") != 4 {
		t.Fatal("every call is recorded")
	}
}

func TestConcurrent(t *testing.T) {
	sb, srv := start(t)
	sb.Script(SendGrid, Repeat(Unavailable(), 5)...)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				do(t, srv, "POST", "/sendgrid/v3/asm/suppressions/global", bearerAuth(DefaultSendGridKey), fmt.Sprintf(`{"recipient_emails":["p%d@example.com"]}`, i))
			} else {
				do(t, srv, "POST", "/mailchimp/3.0/lists/L", basicAuth(DefaultMailchimpKey), fmt.Sprintf(`{"members":[{"email_address":"p%d@example.com","status":"unsubscribed"}]}`, i))
			}
			_ = sb.Snapshot()
		}()
	}
	wg.Wait()
	if sb.CallCount(SendGrid) != 20 || sb.CallCount(Mailchimp) != 20 {
		t.Fatal("calls")
	}
	if len(sb.SendGridSuppressed()) != 15 || len(sb.MailchimpMembers("L")) != 20 {
		t.Fatalf("state %d %d", len(sb.SendGridSuppressed()), len(sb.MailchimpMembers("L")))
	}
}

func TestStart(t *testing.T) {
	sb := New()
	srv, err := sb.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/hubspot/crm/v3/objects/contacts/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatal(resp.StatusCode)
	}
}
