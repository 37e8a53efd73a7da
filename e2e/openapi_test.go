package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/consentsync/consentsync/internal/fixtures"
	"github.com/consentsync/consentsync/server"
)

func init() {
	// Salesforce's SOAP Ack is text the document describes as a string.
	openapi3filter.RegisterBodyDecoder("text/xml", openapi3filter.FileBodyDecoder)
}

// contract checks real requests and answers against the OpenAPI document
// the service serves.
type contract struct {
	t      *testing.T
	e      *env
	doc    *openapi3.T
	router routers.Router
	// statuses counts the answers validated, per "METHOD path status".
	statuses map[string]int
}

func newContract(t *testing.T, e *env) *contract {
	t.Helper()
	// The document the service serves is the checked-in one.
	r := e.do("GET", "/v1/openapi.json", "", nil, nil)
	if r.Status != 200 || r.Body != string(server.OpenAPI) {
		t.Fatalf("GET /v1/openapi.json: HTTP %d, %d bytes; want 200 and server/openapi.json (%d bytes)", r.Status, len(r.Body), len(server.OpenAPI))
	}
	doc, err := openapi3.NewLoader().LoadFromData([]byte(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{t: t, e: e, doc: doc, router: router, statuses: map[string]int{}}
}

// do sends a request, then validates it and its answer against the
// document: the route and method exist, parameters and JSON bodies match
// their schemas, the status is one the operation lists, and the answer's
// body matches that status's schema (unknown fields refused where the
// schema lists its properties).
func (c *contract) do(method, path, query string, header http.Header, body []byte, want int) response {
	c.t.Helper()
	u := c.e.URL + path
	if onOps(path) {
		u = c.e.OpsURL + path
	}
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if header != nil {
		req.Header = header.Clone()
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Fatalf("%s %s: not in the document: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			// A webhook's body is the sender's bytes, described as such.
			ExcludeRequestBody: strings.HasPrefix(route.Path, "/webhooks/"),
			MultiError:         true,
		},
	}
	if want < 400 {
		// Requests meant to be refused are refused by the service, not here.
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			c.t.Errorf("%s %s: request does not match the document: %v", method, path, err)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(b)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s %s → %d: answer does not match the document: %v\n%s", method, path, resp.StatusCode, err, truncateBody(b))
	}
	c.statuses[fmt.Sprintf("%s %s %d", method, route.Path, resp.StatusCode)]++
	return response{Status: resp.StatusCode, Body: string(b)}
}

func truncateBody(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

var adminAuth = http.Header{"Authorization": {"Bearer test-admin-token"}}

// TestOpenAPIContract: every bundled real-format webhook, then the admin
// API for every person they created (view, history, eligibility, batch,
// erasure), errors included (400, 401, 404), and the ops endpoints, each
// answer of the running service validated against the document it serves
// at /v1/openapi.json.
func TestOpenAPIContract(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{})
	c := newContract(t, e)

	all, err := fixtures.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, fx := range all {
		e.SetNow(fx.Now)
		req := fx.ConnectorRequest()
		c.do(fx.Request.Method, fx.Request.Path, fx.Request.Query, req.Header, req.Body, fx.Expect.Status)
	}
	// A repeat: 202 duplicate.
	form := fixture(t, "form-signup")
	e.SetNow(form.Now)
	if r := c.do("POST", form.Request.Path, form.Request.Query, form.ConnectorRequest().Header, form.Body, 202); !strings.Contains(r.Body, `"duplicate":true`) {
		t.Errorf("repeat: %s", r.Body)
	}
	// Webhook refusals.
	jsonH := http.Header{"Content-Type": {"application/json"}}
	bad := []byte(`{"email": "a@b.fr", `)
	c.do("POST", "/webhooks/signup-form", "", http.Header{"Content-Type": {"application/json"}, "X-Signature": {formSig(bad)}}, bad, 400)
	c.do("POST", "/webhooks/signup-form", "", jsonH, form.Body, 401)
	c.do("POST", "/webhooks/nope", "", jsonH, form.Body, 404)
	big := []byte(`{"email":"` + strings.Repeat("a", 2<<20) + `@x.fr"}`)
	c.do("POST", "/webhooks/signup-form", "", http.Header{"Content-Type": {"application/json"}, "X-Signature": {formSig(big)}}, big, 413)
	mc := fixture(t, "mailchimp-unsubscribe")
	c.do("GET", mc.Request.Path, mc.Request.Query, nil, nil, 200)
	c.do("GET", mc.Request.Path, "key=wrong", nil, nil, 401)
	c.do("HEAD", mc.Request.Path, mc.Request.Query, nil, nil, 200)
	c.do("GET", "/webhooks/signup-form", "", nil, nil, 405)
	c.do("GET", "/webhooks/nope", "", nil, nil, 404)
	e.waitDrained()

	// The admin API, for every person the webhooks named.
	var people []string
	if err := e.App.Store.DB.Select(&people, `SELECT coalesce(email, phone) FROM subjects WHERE coalesce(email, phone) IS NOT NULL ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if len(people) < 5 {
		t.Fatalf("only %d people: the fixtures did not go through", len(people))
	}
	brand := e.App.Config.Brands()[0]
	for _, who := range people {
		p := "/v1/subjects/" + url.PathEscape(who)
		c.do("GET", p, "", adminAuth, nil, 200)
		c.do("GET", p+"/history", "", adminAuth, nil, 200)
		c.do("GET", p+"/eligibility", "brand="+url.QueryEscape(brand)+"&channel=email&purpose=marketing", adminAuth, nil, 200)
		c.do("GET", p+"/eligibility", "brand="+url.QueryEscape(brand)+"&purpose=partners", adminAuth, nil, 200)
	}
	batch := fmt.Sprintf(`{"brand": %q, "channel": "email", "purpose": "marketing", "subjects": ["%s", "nobody@example.com", "not an address"]}`,
		brand, strings.Join(people, `", "`))
	if r := c.do("POST", "/v1/eligibility", "", http.Header{"Authorization": adminAuth["Authorization"], "Content-Type": {"application/json"}}, []byte(batch), 200); !strings.Contains(r.Body, "invalid_identifier") {
		t.Errorf("batch: %s", r.Body)
	}
	// Errors.
	jsonAdmin := http.Header{"Authorization": adminAuth["Authorization"], "Content-Type": {"application/json"}}
	c.do("POST", "/v1/eligibility", "", jsonAdmin, []byte(`{"brand": "acme", "subjects": [`), 400)
	c.do("POST", "/v1/eligibility", "", jsonAdmin, []byte(`{"brand": "acme", "subjects": ["a@b.fr"], "extra": 1}`), 400)
	c.do("POST", "/v1/eligibility", "", jsonAdmin, []byte(`{"brand": "no-such-brand", "subjects": ["a@b.fr"]}`), 400)
	c.do("GET", "/v1/subjects/not-an-identifier", "", adminAuth, nil, 400)
	c.do("GET", "/v1/subjects/nobody%40example.com", "", adminAuth, nil, 404)
	c.do("GET", "/v1/subjects/nobody%40example.com/history", "", adminAuth, nil, 404)
	c.do("GET", "/v1/subjects/nobody%40example.com/eligibility", "brand="+url.QueryEscape(brand), adminAuth, nil, 200)
	c.do("GET", "/v1/subjects/"+url.PathEscape(people[0])+"/eligibility", "brand=no-such-brand", adminAuth, nil, 400)
	c.do("GET", "/v1/subjects/"+url.PathEscape(people[0]), "", nil, nil, 401)
	c.do("GET", "/v1/subjects/"+url.PathEscape(people[0]), "", http.Header{"Authorization": {"Bearer wrong"}}, nil, 401)
	// Erasure, then the erased person.
	erased := "/v1/subjects/" + url.PathEscape(people[0])
	c.do("DELETE", erased, "", adminAuth, nil, 200)
	c.do("GET", erased, "", adminAuth, nil, 404)
	c.do("DELETE", erased, "", adminAuth, nil, 404)
	// Ops.
	c.do("GET", "/healthz", "", nil, nil, 200)
	c.do("GET", "/readyz", "", nil, nil, 200)
	c.do("GET", "/metrics", "", http.Header{"Authorization": {"Bearer " + viewerToken}}, nil, 200)
	c.do("GET", "/debug/pprof/", "", nil, nil, 401)
	c.do("GET", "/debug/pprof/cmdline", "", adminAuth, nil, 200)
	c.do("GET", "/ops/queues/", "", nil, nil, 401)
	c.do("GET", "/v1/openapi.json", "", nil, nil, 200)

	for _, want := range []string{
		"POST /webhooks/{source} 202", "POST /webhooks/{source} 400", "POST /webhooks/{source} 401", "POST /webhooks/{source} 404",
		"GET /v1/subjects/{id} 200", "GET /v1/subjects/{id} 400", "GET /v1/subjects/{id} 404", "GET /v1/subjects/{id}/history 200",
		"GET /v1/subjects/{id}/eligibility 200", "POST /v1/eligibility 200", "POST /v1/eligibility 400", "DELETE /v1/subjects/{id} 200",
	} {
		if c.statuses[want] == 0 {
			t.Errorf("no %s answer was validated", want)
		}
	}
	t.Logf("validated answers: %v", c.statuses)
}
