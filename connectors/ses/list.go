package ses

import (
	"context"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	"github.com/consentsync/consentsync/connectors"
)

// ListPageSize is PageSize=1000, the most ListContacts returns per page
// (https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_ListContacts.html).
const ListPageSize = 1000

var _ connectors.Lister = (*Destination)(nil)

// List reads the contact list's unsubscribed contacts for a backfill
// (connectors.Lister) with ListContacts (URL above), through the SDK like
// Push: every contact of the list, PageSize 1000, the answer's NextToken
// as the cursor (SES tokens are opaque; "" after the last page). A contact
// with UnsubscribeAll, or opted out of one of the destination's topics,
// is a withdrawal dated LastUpdatedTimestamp (SES keeps no date of the
// unsubscribe itself; the last update is at or after it), reason
// "unsubscribe_all" or "topic_opt_out". The account-level suppression
// list (bounces and complaints) is not read: it is not consent. Errors
// follow Push's (throttling is a *connectors.RetryAfterError of
// ThrottleDelay).
func (d *Destination) List(ctx context.Context, cursor string) ([]connectors.Listed, string, error) {
	in := &sesv2.ListContactsInput{ContactListName: aws.String(d.list), PageSize: aws.Int32(ListPageSize)}
	if cursor != "" {
		in.NextToken = aws.String(cursor)
	}
	out, err := d.client.ListContacts(ctx, in)
	if isNotFound(err) {
		return nil, "", connectors.Permanent("ses: contact_list:%s not found", d.list)
	}
	if err != nil {
		return nil, "", d.classify(err).err
	}
	var page []connectors.Listed
	for _, c := range out.Contacts {
		reason := ""
		switch {
		case c.UnsubscribeAll:
			reason = "unsubscribe_all"
		case slices.ContainsFunc(c.TopicPreferences, func(p types.TopicPreference) bool {
			return p.SubscriptionStatus == types.SubscriptionStatusOptOut && slices.Contains(d.topics, aws.ToString(p.TopicName))
		}):
			reason = "topic_opt_out"
		default:
			continue
		}
		it := connectors.Listed{Email: aws.ToString(c.EmailAddress), Reason: reason}
		if c.LastUpdatedTimestamp != nil {
			it.At = c.LastUpdatedTimestamp.UTC()
		}
		page = append(page, it)
	}
	return page, aws.ToString(out.NextToken), nil
}
