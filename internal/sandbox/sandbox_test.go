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

	"github.com/consentsync/consentsync/connectors/mailchimp/mailchimpfake"
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

// TestHubSpotBatchRead checks the fake's batch read contract: auth, the
// 100-input limit, 207 partial results, properties cut to those asked for,
// merged contacts.
func TestHubSpotBatchRead(t *testing.T) {
	contacts := map[string]json.RawMessage{
		"501": json.RawMessage(`{"id":"501","properties":{"email":"a@example.com","firstname":"A","hs_object_id":"501"}}`),
		"502": json.RawMessage(`{"id":"502","properties":{"hs_object_id":"502"}}`),
		"600": json.RawMessage(`{"id":"600","properties":{"email":"m@example.com","hs_object_id":"600","hs_merged_object_ids":"601;602"}}`),
	}
	sb, srv := start(t, WithHubSpotContacts(contacts))
	const path = "/hubspot/crm/v3/objects/contacts/batch/read"
	inputs := func(ids ...string) string {
		var in []string
		for _, id := range ids {
			in = append(in, fmt.Sprintf(`{"id":%q}`, id))
		}
		return `{"properties":["email"],"inputs":[` + strings.Join(in, ",") + `]}`
	}
	many := make([]string, HubSpotMaxBatchRead+1)
	for i := range many {
		many[i] = fmt.Sprint(1000 + i)
	}
	type result struct {
		ID         string         `json:"id"`
		Properties map[string]any `json:"properties"`
	}
	tests := []struct {
		name     string
		auth     func(*http.Request)
		body     string
		status   int
		category string // of an error body
		results  []string
		missing  []string
	}{
		{name: "no token", body: inputs("501"), status: 401, category: "INVALID_AUTHENTICATION"},
		{name: "wrong token", auth: bearerAuth("wrong"), body: inputs("501"), status: 401, category: "INVALID_AUTHENTICATION"},
		{name: "basic auth", auth: basicAuth(DefaultHubSpotToken), body: inputs("501"), status: 401, category: "INVALID_AUTHENTICATION"},
		{name: "all found", body: inputs("501", "502"), status: 200, results: []string{"501", "502"}},
		{name: "partial", body: inputs("501", "999", "998"), status: 207, results: []string{"501"}, missing: []string{"999", "998"}},
		{name: "none found", body: inputs("999"), status: 207, results: []string{}, missing: []string{"999"}},
		{name: "merged ids answer with the survivor, once", body: inputs("601", "602", "600"), status: 200, results: []string{"600"}},
		{name: "100 inputs", body: inputs(many[:HubSpotMaxBatchRead]...), status: 207, results: []string{}, missing: many[:HubSpotMaxBatchRead]},
		{name: "101 inputs", body: inputs(many...), status: 400, category: "VALIDATION_ERROR"},
		{name: "no inputs", body: `{"properties":["email"]}`, status: 400, category: "VALIDATION_ERROR"},
		{name: "not JSON", body: `{"inputs":`, status: 400, category: "VALIDATION_ERROR"},
		{name: "idProperty", body: `{"idProperty":"email","inputs":[{"id":"a@example.com"}]}`, status: 400, category: "VALIDATION_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := tt.auth
			if auth == nil && tt.category != "INVALID_AUTHENTICATION" {
				auth = bearerAuth(DefaultHubSpotToken)
			}
			a := do(t, srv, "POST", path, auth, tt.body)
			if a.status != tt.status {
				t.Fatalf("HTTP %d, want %d: %s", a.status, tt.status, a.raw)
			}
			if tt.category != "" {
				if a.body["category"] != tt.category || a.body["status"] != "error" || a.body["message"] == nil || a.body["correlationId"] == nil {
					t.Fatalf("error body %s", a.raw)
				}
				if tt.status == 400 && strings.Contains(tt.name, "101") && !strings.Contains(a.raw, "maximum number of inputs supported in a batch is 100") {
					t.Errorf("limit message %s", a.raw)
				}
				return
			}
			var body struct {
				Status    string   `json:"status"`
				Results   []result `json:"results"`
				NumErrors int      `json:"numErrors"`
				Errors    []struct {
					Category string              `json:"category"`
					Context  map[string][]string `json:"context"`
				} `json:"errors"`
			}
			if err := json.Unmarshal([]byte(a.raw), &body); err != nil || body.Status != "COMPLETE" || body.Results == nil {
				t.Fatalf("body %s (%v)", a.raw, err)
			}
			var ids []string
			for _, r := range body.Results {
				ids = append(ids, r.ID)
				if _, ok := r.Properties["email"]; !ok {
					t.Errorf("%s: email asked for, not answered (want null when unset): %v", r.ID, r.Properties)
				}
				if _, ok := r.Properties["firstname"]; ok {
					t.Errorf("%s: property not asked for answered: %v", r.ID, r.Properties)
				}
				if r.Properties["hs_object_id"] != r.ID {
					t.Errorf("%s: hs_object_id %v", r.ID, r.Properties["hs_object_id"])
				}
			}
			if strings.Join(ids, ",") != strings.Join(tt.results, ",") {
				t.Errorf("results %v, want %v", ids, tt.results)
			}
			if len(tt.missing) == 0 {
				if body.NumErrors != 0 || len(body.Errors) != 0 {
					t.Errorf("errors %s", a.raw)
				}
				return
			}
			if body.NumErrors != 1 || len(body.Errors) != 1 || body.Errors[0].Category != "OBJECT_NOT_FOUND" ||
				strings.Join(body.Errors[0].Context["ids"], ",") != strings.Join(tt.missing, ",") {
				t.Errorf("errors %s, want OBJECT_NOT_FOUND for %v", a.raw, tt.missing)
			}
		})
	}
	// Every call is recorded with the ids it asked for, credentials or not.
	calls := sb.Calls(HubSpot)
	if len(calls) != len(tests) || calls[0].AuthOK || !calls[3].AuthOK || len(calls[4].ContactIDs) != 3 || len(calls[8].ContactIDs) != HubSpotMaxBatchRead+1 {
		t.Errorf("calls: %d", len(calls))
	}
	// Without "properties": HubSpot's default set.
	a := do(t, srv, "POST", path, bearerAuth(DefaultHubSpotToken), `{"inputs":[{"id":"501"}]}`)
	if a.status != 200 || !strings.Contains(a.raw, `"firstname":"A"`) || !strings.Contains(a.raw, `"email":"a@example.com"`) {
		t.Errorf("default properties: %d %s", a.status, a.raw)
	}
	// A scripted answer comes after the auth check.
	sb.Script(HubSpot, TooManyRequestsSeconds(2))
	a = do(t, srv, "POST", path, bearerAuth(DefaultHubSpotToken), inputs("501"))
	if a.status != 429 || a.header.Get("Retry-After") != "2" || a.body["category"] != "RATE_LIMITS" {
		t.Errorf("scripted: %d %v %s", a.status, a.header, a.raw)
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
	for _, p := range []string{"/sendgrid/v3/nope", "/mailchimp/3.0/nope", "/hubspot/nope", "/elsewhere"} {
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

// TestMountedFakes: the sandbox delegates to the per-provider fakes,
// mounted under their prefixes; scripts come after the auth check on the
// read-back paths too.
func TestMountedFakes(t *testing.T) {
	sb, srv := start(t, WithSendGridSuppressed("a@example.com"), WithMailchimpMember("L", "M@example.com", "unsubscribed"))
	if !sb.SendGrid().IsSuppressed("A@example.com") || sb.Mailchimp().Status("L", "m@example.com") != "unsubscribed" {
		t.Fatal("options not delegated")
	}
	member := "/mailchimp/3.0/lists/L/members/" + mailchimpfake.SubscriberHash("m@example.com")
	if a := do(t, srv, "GET", member, basicAuth(DefaultMailchimpKey), ""); a.status != 200 || a.body["status"] != "unsubscribed" {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	sb.Mailchimp().Forget("L", "m@example.com")
	sb.SendGrid().Forget("a@example.com")
	if a := do(t, srv, "GET", member, basicAuth(DefaultMailchimpKey), ""); a.status != 404 || a.body["title"] != "Resource Not Found" {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if len(sb.SendGridSuppressed()) != 0 {
		t.Fatal("forgotten")
	}
	sb.Script(Mailchimp, TooManyRequestsSeconds(3))
	if a := do(t, srv, "GET", member, basicAuth("wrong"), ""); a.status != 401 {
		t.Fatal(a.status)
	}
	if a := do(t, srv, "GET", member, basicAuth(DefaultMailchimpKey), ""); a.status != 429 || a.header.Get("Retry-After") != "3" || a.body["status"] != float64(429) {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	calls := sb.Calls(Mailchimp)
	if len(calls) != 4 || !calls[3].Scripted || calls[2].AuthOK || !calls[0].AuthOK {
		t.Fatalf("calls %+v", calls)
	}
	// The fake sees what reached it: not the scripted call.
	if fc := sb.Mailchimp().Calls(); len(fc) != 3 || fc[0].Path != "/3.0/lists/L/members/"+mailchimpfake.SubscriberHash("m@example.com") {
		t.Fatalf("fake calls %+v", fc)
	}
	sb.ResetCalls()
	if sb.Mailchimp().CallCount() != 0 || sb.CallCount("") != 0 {
		t.Fatal("reset")
	}
}
