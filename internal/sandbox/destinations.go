package sandbox

import (
	"net/http"

	"github.com/consentsync/consentsync/connectors/brevo/brevofake"
	"github.com/consentsync/consentsync/connectors/hubspot/hubspotfake"
	"github.com/consentsync/consentsync/connectors/klaviyo/klaviyofake"
	"github.com/consentsync/consentsync/connectors/mailgun/mailgunfake"
	"github.com/consentsync/consentsync/connectors/postmark/postmarkfake"
	"github.com/consentsync/consentsync/connectors/salesforce/salesforcefake"
	"github.com/consentsync/consentsync/connectors/ses/sesfake"
)

// Credentials and names of the other destination fakes, as
// internal/fixtures' destinations.demo.yaml configures them.
const (
	DefaultMailgunKey    = "key-demo-mailgun"
	DefaultMailgunDomain = "mg.acme.example"
	DefaultKlaviyoKey    = "pk_demo_klaviyo"
	// DefaultSESAccessKey is the access key id the SES fake expects; the
	// demo's api_key is "DefaultSESAccessKey:any-secret".
	DefaultSESAccessKey   = "AKIADEMOCONSENTSYNC"
	DefaultSESContactList = "acme-newsletter"
	DefaultSESRegion      = "eu-west-3"
	DefaultHubSpotCPKey   = hubspotfake.DefaultKey
	DefaultSFClientID     = "demo-client-id"
	DefaultSFClientSecret = "demo-client-secret"
	DefaultBrevoKey       = brevofake.DefaultKey
	DefaultPostmarkToken  = postmarkfake.DefaultToken
)

// Others are the fakes of the destinations beyond SendGrid and Mailchimp,
// each mounted under its own prefix: /brevo, /postmark, /mailgun, /klaviyo, /ses,
// /hubspot/communication-preferences and /hubspot/crm/v3/objects/contacts/search
// (beside the HubSpot contacts fake)
// and /salesforce.
type Others struct {
	Brevo      *brevofake.Fake
	Postmark   *postmarkfake.Fake
	Mailgun    *mailgunfake.Fake
	Klaviyo    *klaviyofake.Fake
	SES        *sesfake.Server
	HubSpot    *hubspotfake.Fake
	Salesforce *salesforcefake.Fake
}

func newOthers() *Others {
	o := &Others{
		Brevo:      brevofake.New(),
		Postmark:   postmarkfake.New(),
		Mailgun:    mailgunfake.New(DefaultMailgunKey, DefaultMailgunDomain),
		Klaviyo:    klaviyofake.New(DefaultKlaviyoKey),
		SES:        sesfake.New(DefaultSESAccessKey),
		HubSpot:    hubspotfake.New(),
		Salesforce: salesforcefake.New(salesforcefake.WithClient(DefaultSFClientID, DefaultSFClientSecret)),
	}
	o.SES.AddContactList(DefaultSESContactList)
	return o
}

// Others returns the other destinations' fakes (state, Forget for drift).
func (s *Sandbox) Others() *Others { return s.others }

func (o *Others) mount(mux *http.ServeMux) {
	for prefix, h := range map[string]http.Handler{
		"/brevo": o.Brevo.Handler(), "/postmark": o.Postmark.Handler(),
		"/mailgun": o.Mailgun.Handler(), "/klaviyo": o.Klaviyo.Handler(), "/ses": o.SES.Handler(), "/salesforce": o.Salesforce.Handler(),
	} {
		mux.Handle(prefix+"/", http.StripPrefix(prefix, h))
	}
	mux.Handle("/hubspot/communication-preferences/", http.StripPrefix("/hubspot", o.HubSpot.Handler()))
	// The destination's backfill searches opted-out contacts.
	mux.Handle("POST /hubspot/crm/v3/objects/contacts/search", http.StripPrefix("/hubspot", o.HubSpot.Handler()))
}
