package connectors

import (
	"context"
	"fmt"
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
// fails ends it: when it is the first call, or ctx has not ended, its error
// is returned as is, with no result; when ctx ended after earlier calls
// finished, their results are returned with an Unfinished Result for each
// suppression not done, and no error (so the worker records what
// finished).
func PushByAddress(ctx context.Context, batch []Suppression, max int, push func(context.Context, []Suppression) ([]Result, error)) ([]Result, error) {
	var results []Result
	first := true
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
			if first || ctx.Err() == nil {
				return nil, err
			}
			for _, s := range batch {
				results = append(results, Unfinished(ctx, []int64{s.ID})...)
			}
			return results, nil
		}
		first = false
		results = append(results, res...)
		batch = batch[n:]
	}
	return results, nil
}

// Unfinished returns, for each of ids, a transient Result (its Err does
// not wrap ErrPermanent, so the worker puts the row back to pending and
// retries it) saying the call that would carry it did not finish before
// ctx ended (the worker bounds a whole Push by destinations[].timeout plus
// the rate limit's time).
func Unfinished(ctx context.Context, ids []int64) []Result {
	cause := "the call's time ran out"
	if err := ctx.Err(); err != nil {
		cause += " (" + err.Error() + ")"
	}
	out := make([]Result, 0, len(ids))
	for _, id := range ids {
		out = append(out, Result{ID: id, Err: fmt.Errorf("not sent: %s; retried later", cause)})
	}
	return out
}

// Bisect sends the distinct addresses addrs, whose suppressions' ids are
// ids[AddrKey(a)], with call, isolating the addresses a provider refuses a
// whole call for (Mailgun's and Klaviyo's 400 when one record is bad) by
// halving, as Brevo's batch update is split:
//
//   - call sends one part (at most the provider's batch limit) and returns
//     the Results of its addresses, or split = true when the provider
//     refused the whole call because of some of them and the part holds
//     more than one address (for a single refused address call returns its
//     permanent Results instead);
//   - a split part is halved and each half sent, first half first, until
//     every refused address is alone: one bad address among n costs about
//     2·log2(n)+1 calls, instead of n+1 sent one by one.
//
// The first call's error is returned as is, with no Result (the whole
// Push failed). When a later call fails because ctx ended (the worker's
// bound on the whole Push), Bisect returns the Results of the calls that
// finished and an Unfinished Result for each address not done, with no
// error, so that finished work is recorded and only the rest retried. Any
// other later failure (a 429, a 5xx after the client's retries) is
// returned as is, with no Result: the destination is held as for a whole
// call (every provider call is idempotent, so resending the done part is
// harmless).
func Bisect(ctx context.Context, addrs []string, ids map[string][]int64, call func(ctx context.Context, addrs []string) (results []Result, split bool, err error)) ([]Result, error) {
	var out []Result
	todo := [][]string{addrs}
	first := true
	for len(todo) > 0 {
		part := todo[0]
		res, split, err := call(ctx, part)
		if err != nil {
			if first || ctx.Err() == nil {
				return nil, err
			}
			for _, p := range todo {
				for _, a := range p {
					out = append(out, Unfinished(ctx, ids[AddrKey(a)])...)
				}
			}
			return out, nil
		}
		first = false
		todo = todo[1:]
		if split && len(part) > 1 {
			h := len(part) / 2
			todo = append([][]string{part[:h], part[h:]}, todo...)
			continue
		}
		out = append(out, res...)
	}
	return out, nil
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
