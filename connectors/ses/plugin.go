package ses

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
)

// Kind is the config kind of an Amazon SES destination.
const Kind = "ses"

// DestinationOptions are an SES destination's own keys.
//
//	destinations:
//	  - name: ses-acme
//	    kind: ses
//	    brand: acme
//	    region: eu-west-3            # required
//	    contact_list: acme-marketing # required
//	    topics: [newsletter, offers] # optional
//
// Credentials come from the standard AWS chain (environment, shared files,
// web identity, ECS/EC2 roles); api_key, when set, is static credentials
// instead (see NewDestination).
type DestinationOptions struct {
	// Region is the AWS Region of the SES account ("eu-west-3", required):
	// contact lists and the account-level suppression list are regional.
	Region string `yaml:"region"`
	// ContactList is the SES contact list whose contacts are unsubscribed
	// (required; SES allows one per account and Region).
	ContactList string `yaml:"contact_list"`
	// Topics are the list's topic names. Every one is sent back as OPT_OUT
	// with each unsubscribe, because UpdateContact drops the preferences it
	// is not given. Empty: none are sent.
	Topics []string `yaml:"topics"`
}

// regionRE matches AWS Region codes: "eu-west-3", "us-gov-west-1",
// "ap-southeast-2".
var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

// nameRE is SES's contact list and topic name syntax as we accept it:
// letters, digits, '-' and '_', at most 64 characters (U: SES documents no
// pattern; names outside it are refused by the console).
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Defaults trims the keys' values.
func (o *DestinationOptions) Defaults() {
	o.Region = strings.TrimSpace(o.Region)
	o.ContactList = strings.TrimSpace(o.ContactList)
	// A new slice: the options value may be a copy sharing the
	// configuration's (Defaults runs again in NewDestination).
	topics := make([]string, len(o.Topics))
	for i, t := range o.Topics {
		topics[i] = strings.TrimSpace(t)
	}
	if o.Topics != nil {
		o.Topics = topics
	}
}

// Validate requires region and contact_list, and checks topics (names,
// no repeats).
func (o *DestinationOptions) Validate(_ bool, bad func(key, format string, args ...any)) {
	switch {
	case o.Region == "":
		bad("region", "is required (the AWS Region of the SES account, e.g. eu-west-3)")
	case !regionRE.MatchString(o.Region):
		bad("region", "%q is not an AWS Region code (e.g. eu-west-3)", o.Region)
	}
	switch {
	case o.ContactList == "":
		bad("contact_list", "is required (the SES contact list to unsubscribe contacts from)")
	case !nameRE.MatchString(o.ContactList):
		bad("contact_list", "%q: want letters, digits, '-' or '_' (at most 64)", o.ContactList)
	}
	seen := map[string]bool{}
	for i, t := range o.Topics {
		switch {
		case !nameRE.MatchString(t):
			bad("topics["+strconv.Itoa(i)+"]", "%q: want letters, digits, '-' or '_' (at most 64)", t)
		case seen[t]:
			bad("topics["+strconv.Itoa(i)+"]", "%q is listed twice", t)
		}
		seen[t] = true
	}
}

func init() {
	connectors.RegisterDestination(connectors.DestinationPlugin{
		Kind: Kind,
		// AWS SES quotas: 1 request/s for the contact-list and suppression APIs (https://docs.aws.amazon.com/ses/latest/dg/quotas.html).
		RateLimit: 1,
		Options:   func() any { return new(DestinationOptions) },
		NoAPIKey:  true,
		New: func(cfg config.Destination, deps connectors.Deps) (connectors.Destination, error) {
			return NewDestination(cfg, deps)
		},
	})
}
