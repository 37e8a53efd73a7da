package connectors

import (
	"context"
	"strings"

	"github.com/consentsync/consentsync/consent"
)

// AddrKey is how a destination matches addresses: in its answers (which
// may lower-case them) and between suppressions of one address. It is the
// address trimmed and lower-cased.
func AddrKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// EmailOnly splits batch for a destination that suppresses email addresses:
// the suppressions to send, and a Result wrapping ErrPermanent, in batch
// order, for each of the others: one on a channel other than email
// ("<vendor>: channel \"sms\" is not supported (email only)"), one without
// an address ("<vendor>: suppression has no email address"), and one that
// refuse (when not nil) returns an error for (that error is its Result's).
func EmailOnly(vendor string, batch []Suppression, refuse func(Suppression) error) (send []Suppression, refused []Result) {
	for _, s := range batch {
		switch {
		case s.Channel != "" && s.Channel != consent.ChannelEmail:
			refused = append(refused, Result{ID: s.ID, Err: Permanent("%s: channel %q is not supported (email only)", vendor, s.Channel)})
		case strings.TrimSpace(s.Email) == "":
			refused = append(refused, Result{ID: s.ID, Err: Permanent("%s: suppression has no email address", vendor)})
		default:
			if refuse != nil {
				if err := refuse(s); err != nil {
					refused = append(refused, Result{ID: s.ID, Err: err})
					continue
				}
			}
			send = append(send, s)
		}
	}
	return send, refused
}

// PushByAddress sends batch with push in consecutive calls of at most max
// distinct addresses (AddrKey), so that the suppressions of one address
// ride in one call, and returns every call's results. The first call that
// fails ends it: its error is returned as is, with no result.
func PushByAddress(ctx context.Context, batch []Suppression, max int, push func(context.Context, []Suppression) ([]Result, error)) ([]Result, error) {
	var results []Result
	for len(batch) > 0 {
		n, seen := 0, map[string]bool{}
		for n < len(batch) {
			k := AddrKey(batch[n].Email)
			if !seen[k] && len(seen) == max {
				break
			}
			seen[k] = true
			n++
		}
		res, err := push(ctx, batch[:n])
		if err != nil {
			return nil, err
		}
		results = append(results, res...)
		batch = batch[n:]
	}
	return results, nil
}

// GroupByAddress returns the distinct addresses of batch (by AddrKey),
// trimmed, as first spelled and in first-seen order, and, by AddrKey, the
// ids of the suppressions that carry each.
func GroupByAddress(batch []Suppression) (addrs []string, ids map[string][]int64) {
	ids = map[string][]int64{}
	for _, s := range batch {
		k := AddrKey(s.Email)
		if _, ok := ids[k]; !ok {
			addrs = append(addrs, strings.TrimSpace(s.Email))
		}
		ids[k] = append(ids[k], s.ID)
	}
	return addrs, ids
}
