// Package ses is the Amazon SES destination: a withdrawal unsubscribes the
// address from an SES contact list (and, for a spam complaint, puts it on
// the account-level suppression list), through the SES API v2 and the AWS
// SDK for Go v2.
package ses

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// MaxBatch is how many suppressions one Push, Check or Lift handles. SES v2
// has no batch call for contacts or suppressions: each address is one call
// (two for a spam complaint), at most connectors.InFlight at once, so 50
// bounds a push to about a minute at SES's default rate for API actions
// other than sending, 1 request per second
// (https://docs.aws.amazon.com/ses/latest/dg/quotas.html).
const MaxBatch = 50

// ThrottleDelay is the delay of the *connectors.RetryAfterError a throttled
// call (429 TooManyRequestsException, LimitExceededException and the other
// AWS throttling codes) ends a batch with: SES names no wait, and its rate
// is counted per second.
const ThrottleDelay = time.Second

// Receipt models, as they open every receipt.
const (
	// ModelUnsubscribeAll is "contact_list:<name> unsubscribe_all".
	ModelUnsubscribeAll = "unsubscribe_all"
	// ModelComplaint is what a spam complaint's receipt adds.
	ModelComplaint = "+ account suppression COMPLAINT"
)

// ErrContactListNotFound wraps (with connectors.ErrPermanent) the whole-call
// error of a push whose contact list does not exist (or does not have one of
// the configured topics: SES answers both with NotFoundException).
var ErrContactListNotFound = errors.New("ses: contact list (or one of its topics) not found")

var (
	_ connectors.Destination = (*Destination)(nil)
	_ connectors.Checker     = (*Destination)(nil)
	_ connectors.Lifter      = (*Destination)(nil)
)

// complaintReasons are the Suppression.Reason values of a spam complaint.
var complaintReasons = map[string]bool{"spamreport": true, "complaint": true, "spam_complaint": true}

// IsComplaint reports whether a suppression's Reason is a spam complaint
// ("spamreport", "complaint", "spam_complaint", any case).
func IsComplaint(reason string) bool {
	return complaintReasons[strings.ToLower(strings.TrimSpace(reason))]
}

// Destination unsubscribes addresses from one SES contact list.
//
// Model: PutSuppressedDestination accepts only BOUNCE and COMPLAINT, so an
// unsubscribe is not an account suppression. For each address, Push calls
// UpdateContact (PUT /v2/email/contact-lists/{list}/contacts/{email}) with
// UnsubscribeAll true and every configured topic as OPT_OUT (UpdateContact
// drops the preferences it is not sent); when the contact does not exist
// (NotFoundException) it calls CreateContact (POST
// /v2/email/contact-lists/{list}/contacts) with the same values, so the
// suppression holds if the address is imported later. A suppression whose
// Reason is a spam complaint (IsComplaint) also puts the address on the
// account-level suppression list (PutSuppressedDestination, PUT
// /v2/email/suppression/addresses, Reason COMPLAINT): SES then sends it
// nothing at all. Every call sets state, so repeating it is harmless
// (idempotent). Receipts say which model was used:
// "ses: contact_list:<name> unsubscribe_all (updated|created; ...)" and,
// for a complaint, " + account suppression COMPLAINT".
// (https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_UpdateContact.html,
// API_CreateContact.html, API_PutSuppressedDestination.html.)
//
// What an unsubscribed contact covers (provider side): SES honours a
// contact's UnsubscribeAll and topic preferences only for mail sent with
// ListManagementOptions naming this contact list (and a topic), as
// SendEmail's ListManagementOptions / the sender's configuration do
// (https://docs.aws.amazon.com/ses/latest/dg/sending-email-subscription-management.html).
// A sender that calls SendEmail without ListManagementOptions keeps
// mailing the address: this destination does not stop it, only the
// account-level suppression list (complaints) does. SES allows only one
// contact list per AWS account, with at most 20 topics
// (https://docs.aws.amazon.com/ses/latest/dg/sending-email-list-management.html),
// so every brand sending from the account shares the list.
//
// Calls run connectors.InFlight at a time (the rate limiter paces them).
// Errors (SES's typed errors, decoded by the SDK from the status,
// x-amzn-ErrorType and {"message"}):
//   - BadRequestException and other 4xx (but the ones below): that
//     address's Result, wrapping connectors.ErrPermanent; the batch goes on;
//   - throttling (TooManyRequestsException, LimitExceededException, ...),
//     5xx, timeouts and transport errors stop the batch (no more calls
//     start; those in flight finish): when no address was done, Push
//     returns the error (a *connectors.RetryAfterError of
//     ThrottleDelay when throttled, else transient); otherwise it returns the
//     finished Results and, for every address not done, a Result whose Err
//     is that transient error (not ErrPermanent: the worker tries them again
//     later), so that progress under SES's 1 request/s is kept;
//   - 401/403 (credentials, signature, permissions), AccountSuspendedException,
//     an unknown operation (404 without NotFoundException: a wrong base_url)
//     and a missing contact list (ErrContactListNotFound) are returned as
//     the whole call's error, wrapping connectors.ErrPermanent.
//
// The SDK's own retries are off (the outbox retries); the HTTP client is
// deps.HTTPClient(cfg.Timeout), which retries 429 and 5xx in place (see
// connectors.NewHTTPClient). Errors and receipts never contain the secret
// access key, and addresses are masked in them (connectors.Redact).
type Destination struct {
	name    string
	list    string
	topics  []string
	secrets []string
	client  *sesv2.Client
}

// NewDestination builds an SES destination. The region and contact_list
// options are required (DestinationOptions).
//
// Credentials: when cfg.APIKey is set it is static credentials,
// "ACCESS_KEY_ID:SECRET_ACCESS_KEY" or
// "ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN" (tests, the sandbox, or a
// deployment without another source); otherwise the standard AWS chain
// (config.LoadDefaultConfig: AWS_ACCESS_KEY_ID..., shared files, web
// identity, container and instance roles), resolved at the first call.
// cfg.BaseURL, when set, replaces the Region's endpoint
// (https://email.<region>.amazonaws.com); a path in it is kept (a sandbox
// mounting the fake under /ses). SES calls go through
// deps.HTTPClient(cfg.Timeout) (system roots and SSL_CERT_FILE; AWS_CA_BUNDLE
// applies only to the credential chain's own calls). Errors name the config key and
// never contain the secret.
func NewDestination(cfg config.Destination, deps connectors.Deps) (*Destination, error) {
	o, err := connectors.DestinationOptions[DestinationOptions](cfg.Options)
	if err != nil {
		return nil, err
	}
	base, err := connectors.BaseURL(cfg.BaseURL, "")
	if err != nil {
		return nil, err
	}
	hc := deps.HTTPClient(cfg.Timeout).StandardClient()
	noRetry := func() aws.Retryer { return aws.NopRetryer{} }

	var awsCfg aws.Config
	var secrets []string
	if cfg.APIKey != "" {
		parts := strings.SplitN(cfg.APIKey, ":", 3)
		if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("api_key: must be ACCESS_KEY_ID:SECRET_ACCESS_KEY (static credentials), or unset for the AWS credential chain")
		}
		token := ""
		if len(parts) == 3 {
			token = parts[2]
		}
		secrets = []string{cfg.APIKey, parts[1]}
		if token != "" {
			secrets = append(secrets, token)
		}
		awsCfg = aws.Config{
			Region:      o.Region,
			Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(parts[0], parts[1], token)),
			HTTPClient:  hc,
			Retryer:     noRetry,
		}
	} else {
		var err error
		// The chain's own calls (STS, SSO, IMDS) keep the SDK's client, so
		// that AWS_CA_BUNDLE applies to them; SES calls use hc (below).
		awsCfg, err = awsconfig.LoadDefaultConfig(context.Background(),
			awsconfig.WithRegion(o.Region), awsconfig.WithRetryer(noRetry))
		if err != nil {
			return nil, fmt.Errorf("ses: AWS configuration: %s", connectors.Redact(err.Error(), ""))
		}
	}
	client := sesv2.NewFromConfig(awsCfg, func(so *sesv2.Options) {
		if base != "" {
			so.BaseEndpoint = aws.String(base)
		}
		so.Retryer = aws.NopRetryer{}
		so.HTTPClient = hc
	})
	return &Destination{name: cfg.Name, list: o.ContactList, topics: append([]string(nil), o.Topics...), secrets: secrets, client: client}, nil
}

// MaxBatch is MaxBatch.
func (d *Destination) MaxBatch() int { return MaxBatch }

// PushCalls bounds the requests of a Push or Lift of n suppressions: one
// per address, two for a spam complaint (connectors.CallCounter).
func (d *Destination) PushCalls(n int) int { return 2 * n }

// group is one address of a batch and the suppressions that carry it.
type group struct {
	addr string
	sups []connectors.Suppression
}

func groups(batch []connectors.Suppression) []group {
	var out []group
	at := map[string]int{}
	for _, s := range batch {
		k := connectors.AddrKey(s.Email)
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, group{addr: strings.TrimSpace(s.Email)})
		}
		out[i].sups = append(out[i].sups, s)
	}
	return out
}

func (g group) complaint() bool {
	for _, s := range g.sups {
		if IsComplaint(s.Reason) {
			return true
		}
	}
	return false
}

func refuseBadAddress(s connectors.Suppression) error {
	if _, _, err := consent.NormalizeEmail(s.Email); err != nil {
		return connectors.Permanent("ses: not an email address SES accepts")
	}
	return nil
}

// Push unsubscribes batch's addresses (see Destination). Suppressions
// without a usable email address, or on a channel other than email, get a
// permanent Result without a call.
func (d *Destination) Push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	todo, results := connectors.EmailOnly("ses", batch, refuseBadAddress)
	gs := groups(todo)
	outs, stop := run(ctx, d, gs, d.unsubscribe)
	if stop != nil && (stop.whole || !anyDone(outs)) {
		return nil, stop.err
	}
	for i, g := range gs {
		switch o := outs[i]; {
		case !o.done:
			results = append(results, resultsFor(g, "", fmt.Errorf("ses: not pushed, the batch stopped: %w", stop.err))...)
		case o.err != nil:
			results = append(results, resultsFor(g, o.err.Error(), o.err)...)
		default:
			results = append(results, resultsFor(g, o.v, nil)...)
		}
	}
	return results, nil
}

// outcome is one group's answer in run: v, or the per-address error err
// (classify: not stopping the batch); done is false for a group the batch
// stopped before it finished.
type outcome[T any] struct {
	v    T
	err  error
	done bool
}

// run calls call for each of gs, at most connectors.InFlight at once (SES
// v2 has no batch call: one call, or two, per address). The first error
// that stops the batch (classify: throttled, transient, whole) starts no
// more calls; the calls in flight finish (their work is kept), but for a
// whole error (credentials, a missing list), which cancels them. run
// returns that error as stop (a whole one wins over another), with every
// group's outcome. When ctx ends, the groups not started are not done and
// stop is ctx's error.
func run[T any](ctx context.Context, d *Destination, gs []group, call func(context.Context, group) (T, error)) (out []outcome[T], stop *classified) {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out = make([]outcome[T], len(gs))
	var mu sync.Mutex
	stopped := func() bool { mu.Lock(); defer mu.Unlock(); return stop != nil }
	var g errgroup.Group
	g.SetLimit(connectors.InFlight)
	for i := range gs {
		if ctx.Err() != nil || stopped() {
			break
		}
		g.Go(func() error {
			if ctx.Err() != nil || stopped() {
				return nil // the batch stopped while this group waited for a slot: not started, not done
			}
			v, err := connectors.Recover(func() (T, error) { return call(ctx, gs[i]) })
			if err == nil {
				out[i] = outcome[T]{v: v, done: true}
				return nil
			}
			c := d.classify(err)
			if !c.stop {
				out[i] = outcome[T]{err: c.err, done: true}
				return nil
			}
			mu.Lock()
			if stop == nil || c.whole && !stop.whole {
				stop = &c
			}
			mu.Unlock()
			if c.whole {
				cancel()
			}
			return nil
		})
	}
	_ = g.Wait() // the calls report through out and stop
	if stop == nil && !allDone(out) {
		c := d.classify(parent.Err())
		stop = &c
	}
	return out, stop
}

func anyDone[T any](out []outcome[T]) bool {
	for _, o := range out {
		if o.done {
			return true
		}
	}
	return false
}

func allDone[T any](out []outcome[T]) bool {
	for _, o := range out {
		if !o.done {
			return false
		}
	}
	return true
}

func resultsFor(g group, receipt string, err error) []connectors.Result {
	out := make([]connectors.Result, 0, len(g.sups))
	for _, s := range g.sups {
		out = append(out, connectors.Result{ID: s.ID, Err: err, Receipt: receipt})
	}
	return out
}

func (d *Destination) optOuts() []types.TopicPreference {
	if len(d.topics) == 0 {
		return nil
	}
	prefs := make([]types.TopicPreference, 0, len(d.topics))
	for _, t := range d.topics {
		prefs = append(prefs, types.TopicPreference{TopicName: aws.String(t), SubscriptionStatus: types.SubscriptionStatusOptOut})
	}
	return prefs
}

// unsubscribe makes g's calls and returns its receipt.
func (d *Destination) unsubscribe(ctx context.Context, g group) (string, error) {
	how := "updated"
	update := &sesv2.UpdateContactInput{
		ContactListName: aws.String(d.list), EmailAddress: aws.String(g.addr),
		UnsubscribeAll: true, TopicPreferences: d.optOuts(),
	}
	_, err := d.client.UpdateContact(ctx, update)
	if isNotFound(err) {
		how = "created"
		_, err = d.client.CreateContact(ctx, &sesv2.CreateContactInput{
			ContactListName: aws.String(d.list), EmailAddress: aws.String(g.addr),
			UnsubscribeAll: true, TopicPreferences: d.optOuts(),
		})
		var exists *types.AlreadyExistsException
		switch {
		case errors.As(err, &exists):
			// Created meanwhile (another worker, an import): update it.
			how = "updated"
			_, err = d.client.UpdateContact(ctx, update)
		case isNotFound(err):
			return "", fmt.Errorf("%w: %s: %w", ErrContactListNotFound, d.list, err)
		}
	}
	if err != nil {
		return "", err
	}
	receipt := fmt.Sprintf("ses: contact_list:%s %s (%s", d.list, ModelUnsubscribeAll, how)
	if len(d.topics) > 0 {
		receipt += "; topics opted out: " + strings.Join(d.topics, ",")
	}
	receipt += ")"
	if g.complaint() {
		if _, err := d.client.PutSuppressedDestination(ctx, &sesv2.PutSuppressedDestinationInput{
			EmailAddress: aws.String(g.addr), Reason: types.SuppressionListReasonComplaint,
		}); err != nil {
			return "", err
		}
		receipt += " " + ModelComplaint
	}
	return d.redact(receipt), nil
}

func isNotFound(err error) bool {
	var nf *types.NotFoundException
	return errors.As(err, &nf)
}

func (d *Destination) redact(s string) string {
	for _, sec := range d.secrets {
		s = connectors.Redact(s, sec)
	}
	if len(d.secrets) == 0 {
		s = connectors.Redact(s, "")
	}
	return s
}

// classified is an SDK error sorted out: err (redacted, wrapping
// connectors.ErrPermanent or a *connectors.RetryAfterError as it applies),
// whether it stops the batch, and whether it is the whole call's even after
// some addresses were done.
type classified struct {
	err         error
	stop, whole bool
}

type httpStatus interface{ HTTPStatusCode() int }

// redacted is an error whose text was redacted, still matching is.
type redacted struct {
	msg string
	is  error
}

func (e redacted) Error() string { return e.msg }
func (e redacted) Unwrap() error { return e.is }

func (d *Destination) classify(err error) classified {
	msg := d.redact(err.Error())
	if !strings.HasPrefix(msg, "ses: ") {
		msg = "ses: " + msg
	}
	if errors.Is(err, ErrContactListNotFound) {
		return classified{err: fmt.Errorf("%w: %w", connectors.ErrPermanent, redacted{msg, ErrContactListNotFound}), stop: true, whole: true}
	}
	if errors.Is(err, connectors.ErrPanic) {
		// A call that panicked (run recovers it): transient as before,
		// and still an ErrPanic, as connectors.Each's are.
		return classified{err: redacted{msg, connectors.ErrPanic}, stop: true}
	}
	cause := errors.New(msg)
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if _, ok := retry.DefaultThrottleErrorCodes[apiErr.ErrorCode()]; ok {
			return classified{err: &connectors.RetryAfterError{Delay: ThrottleDelay, Err: cause}, stop: true}
		}
	}
	status := 0
	var hs httpStatus
	if errors.As(err, &hs) {
		status = hs.HTTPStatusCode()
	}
	var suspended *types.AccountSuspendedException
	var badReq *types.BadRequestException
	var nf *types.NotFoundException
	switch {
	case errors.As(err, &suspended):
		return classified{err: fmt.Errorf("%w: %w", connectors.ErrPermanent, cause), stop: true, whole: true}
	case errors.As(err, &badReq), errors.As(err, &nf):
		return classified{err: fmt.Errorf("%w: %w", connectors.ErrPermanent, cause)}
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound:
		return classified{err: fmt.Errorf("%w: %w", connectors.ErrPermanent, cause), stop: true, whole: true}
	case status < 300 && isTimeout(err):
		// No answer in time, or a 2xx whose body stopped coming.
		return classified{err: fmt.Errorf("%w: %w", connectors.ErrTimeout, cause), stop: true}
	case status == 0:
		return classified{err: cause, stop: true} // transport, context, unreadable answer
	case connectors.Transient(status):
		return classified{err: cause, stop: true}
	case status >= 400 && status < 500:
		return classified{err: fmt.Errorf("%w: %w", connectors.ErrPermanent, cause)}
	}
	return classified{err: cause, stop: true}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Check reads back each address's contact (GetContact, GET
// /v2/email/contact-lists/{list}/contacts/{email},
// https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_GetContact.html):
// Suppressed when UnsubscribeAll is true and, for a spam complaint, the
// address is also on the account-level suppression list
// (GetSuppressedDestination, GET /v2/email/suppression/addresses/{email});
// no contact (NotFoundException) is not suppressed. Suppressions that are
// not email, and addresses SES refuses (BadRequestException), are Unknown.
// Errors stop the batch as in Push; addresses not read by then are
// Unknown ("not read back"). Check changes nothing.
func (d *Destination) Check(ctx context.Context, batch []connectors.Suppression) ([]connectors.Status, error) {
	todo, refused := connectors.EmailOnly("ses", batch, refuseBadAddress)
	var out []connectors.Status
	for _, r := range refused {
		out = append(out, connectors.Status{ID: r.ID, Unknown: true, Receipt: d.redact(r.Err.Error())})
	}
	gs := groups(todo)
	type read struct {
		suppressed bool
		receipt    string
	}
	outs, stop := run(ctx, d, gs, func(ctx context.Context, g group) (read, error) {
		suppressed, receipt, err := d.check(ctx, g)
		return read{suppressed, receipt}, err
	})
	if stop != nil && (stop.whole || !anyDone(outs)) {
		return nil, stop.err
	}
	for i, g := range gs {
		switch o := outs[i]; {
		case !o.done:
			out = append(out, statusesFor(g, false, true, d.redact("ses: not read back, the batch stopped: "+stop.err.Error()))...)
		case o.err != nil:
			out = append(out, statusesFor(g, false, true, o.err.Error())...)
		default:
			out = append(out, statusesFor(g, o.v.suppressed, false, o.v.receipt)...)
		}
	}
	return out, nil
}

func statusesFor(g group, suppressed, unknown bool, receipt string) []connectors.Status {
	out := make([]connectors.Status, 0, len(g.sups))
	for _, s := range g.sups {
		out = append(out, connectors.Status{ID: s.ID, Suppressed: suppressed, Unknown: unknown, Receipt: receipt})
	}
	return out
}

func (d *Destination) check(ctx context.Context, g group) (bool, string, error) {
	c, err := d.client.GetContact(ctx, &sesv2.GetContactInput{ContactListName: aws.String(d.list), EmailAddress: aws.String(g.addr)})
	if isNotFound(err) {
		return false, d.redact(fmt.Sprintf("ses: contact_list:%s no such contact", d.list)), nil
	}
	if err != nil {
		return false, "", err
	}
	receipt := fmt.Sprintf("ses: contact_list:%s unsubscribe_all=%t", d.list, c.UnsubscribeAll)
	suppressed := c.UnsubscribeAll
	if g.complaint() {
		reason, err := d.accountSuppression(ctx, g.addr)
		if err != nil {
			return false, "", err
		}
		if reason == "" {
			receipt += "; not on the account suppression list"
			suppressed = false
		} else {
			receipt += "; account suppression " + reason
		}
	}
	return suppressed, d.redact(receipt), nil
}

// accountSuppression returns the reason addr is on the account-level
// suppression list, or "" when it is not.
func (d *Destination) accountSuppression(ctx context.Context, addr string) (string, error) {
	out, err := d.client.GetSuppressedDestination(ctx, &sesv2.GetSuppressedDestinationInput{EmailAddress: aws.String(addr)})
	if isNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if out.SuppressedDestination == nil || out.SuppressedDestination.Reason == "" {
		return "UNKNOWN", nil
	}
	return string(out.SuppressedDestination.Reason), nil
}

// Lift subscribes each address to the contact list again: UpdateContact
// with UnsubscribeAll false and no topic preference, so every topic is back
// at the list's default. An address on the account-level suppression list
// for COMPLAINT is refused (a Result wrapping connectors.ErrLiftRefused and
// connectors.ErrPermanent, without a change): a spam complaint is lifted
// only by the person's new opt-in through the sender's own form and an
// operator removing it from the suppression list. A BOUNCE entry is kept
// (it is deliverability, not consent), and said so in the receipt. An
// address without a contact has nothing to lift (success). Errors follow
// Push's rules. Lift is safe to repeat.
func (d *Destination) Lift(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	todo, results := connectors.EmailOnly("ses", batch, refuseBadAddress)
	gs := groups(todo)
	type lifted struct {
		receipt string
		refused bool
	}
	outs, stop := run(ctx, d, gs, func(ctx context.Context, g group) (lifted, error) {
		receipt, refused, err := d.lift(ctx, g)
		return lifted{receipt, refused}, err
	})
	if stop != nil && (stop.whole || !anyDone(outs)) {
		return nil, stop.err
	}
	for i, g := range gs {
		switch o := outs[i]; {
		case !o.done:
			results = append(results, resultsFor(g, "", fmt.Errorf("ses: not lifted, the batch stopped: %w", stop.err))...)
		case o.err != nil:
			results = append(results, resultsFor(g, o.err.Error(), o.err)...)
		case o.v.refused:
			results = append(results, resultsFor(g, o.v.receipt, fmt.Errorf("%w: %w: %s", connectors.ErrPermanent, connectors.ErrLiftRefused, o.v.receipt))...)
		default:
			results = append(results, resultsFor(g, o.v.receipt, nil)...)
		}
	}
	return results, nil
}

// lift lifts g; refused: SES holds a COMPLAINT for it (nothing changed).
func (d *Destination) lift(ctx context.Context, g group) (receipt string, refused bool, err error) {
	reason, err := d.accountSuppression(ctx, g.addr)
	if err != nil {
		return "", false, err
	}
	if reason == string(types.SuppressionListReasonComplaint) {
		return "ses: the address is on the account suppression list for COMPLAINT (re-opt-in through the sender's own form, then remove it there)", true, nil
	}
	_, err = d.client.UpdateContact(ctx, &sesv2.UpdateContactInput{
		ContactListName: aws.String(d.list), EmailAddress: aws.String(g.addr), UnsubscribeAll: false,
	})
	receipt = fmt.Sprintf("ses: contact_list:%s subscribed again (unsubscribe_all=false, topics at their defaults)", d.list)
	if isNotFound(err) {
		receipt, err = fmt.Sprintf("ses: contact_list:%s no such contact, nothing to lift", d.list), nil
	}
	if err != nil {
		return "", false, err
	}
	if reason != "" {
		receipt += "; account suppression " + reason + " kept"
	}
	return d.redact(receipt), false, nil
}
