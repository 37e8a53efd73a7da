package sesfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func signed(method, url, akid, body string) *http.Request {
	r, _ := http.NewRequest(method, url, strings.NewReader(body))
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+akid+"/20260101/eu-west-3/ses/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
	r.Header.Set("X-Amz-Date", "20260101T000000Z")
	return r
}

func TestWire(t *testing.T) {
	fk := New("AKID")
	fk.AddContactList("l", Topic{Name: "news"})
	srv := httptest.NewServer(fk.Handler())
	defer srv.Close()
	cases := []struct {
		name, method, path, akid, body string
		status                         int
		errType                        string
	}{
		{"wrong key", "GET", "/v2/email/suppression/addresses/a@example.com", "OTHER", "", 403, "UnrecognizedClientException"},
		{"no list", "PUT", "/v2/email/contact-lists/x/contacts/a@example.com", "AKID", `{"UnsubscribeAll":true}`, 404, "NotFoundException"},
		{"no contact", "PUT", "/v2/email/contact-lists/l/contacts/a@example.com", "AKID", `{"UnsubscribeAll":true}`, 404, "NotFoundException"},
		{"create", "POST", "/v2/email/contact-lists/l/contacts", "AKID", `{"EmailAddress":"a@example.com","UnsubscribeAll":true,"TopicPreferences":[{"TopicName":"news","SubscriptionStatus":"OPT_OUT"}]}`, 200, ""},
		{"create again", "POST", "/v2/email/contact-lists/l/contacts", "AKID", `{"EmailAddress":"A@example.com"}`, 400, "AlreadyExistsException"},
		{"unknown topic", "PUT", "/v2/email/contact-lists/l/contacts/a@example.com", "AKID", `{"TopicPreferences":[{"TopicName":"zzz","SubscriptionStatus":"OPT_OUT"}]}`, 404, "NotFoundException"},
		{"get", "GET", "/v2/email/contact-lists/l/contacts/a%40example.com", "AKID", "", 200, ""},
		{"bad reason", "PUT", "/v2/email/suppression/addresses", "AKID", `{"EmailAddress":"a@example.com","Reason":"UNSUBSCRIBE"}`, 400, "BadRequestException"},
		{"not suppressed", "GET", "/v2/email/suppression/addresses/a@example.com", "AKID", "", 404, "NotFoundException"},
	}
	for _, c := range cases {
		resp, err := http.DefaultClient.Do(signed(c.method, srv.URL+c.path, c.akid, c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.Header.Get("X-Amzn-Errortype") != c.errType {
			t.Fatalf("%s: %d %q %s", c.name, resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), b)
		}
		if c.errType != "" {
			var e struct{ Message string }
			if json.Unmarshal(b, &e) != nil || e.Message == "" {
				t.Fatalf("%s: error body %s", c.name, b)
			}
		}
		if c.name == "get" {
			var g struct {
				UnsubscribeAll   bool
				TopicPreferences []struct{ TopicName, SubscriptionStatus string }
			}
			if json.Unmarshal(b, &g) != nil || !g.UnsubscribeAll || len(g.TopicPreferences) != 1 || g.TopicPreferences[0].SubscriptionStatus != OptOut {
				t.Fatalf("get: %s", b)
			}
		}
	}
	if !fk.Unsubscribed("l", "A@EXAMPLE.com") {
		t.Fatal("state")
	}
	fk.Forget("l", "a@example.com")
	if fk.Unsubscribed("l", "a@example.com") {
		t.Fatal("Forget")
	}
}
