// Package mailgun receives Mailgun event webhooks (kind "mailgun").
//
// Wire format (https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/#securing-webhooks,
// https://documentation.mailgun.com/docs/mailgun/user-manual/events/):
// one JSON object per request,
//
//	{"signature": {"timestamp": "1763635500", "token": "<50 chars>", "signature": "<hex>"},
//	 "event-data": {"event": "unsubscribed", "id": "Ase7i2zsRYeDXztHGENqRA",
//	                "timestamp": 1763635499.25, "recipient": "emma@example.com",
//	                "tags": ["newsletter"], "severity": "permanent", ...}}
//
// signature.signature = hex(HMAC-SHA256(HTTP webhook signing key,
// signature.timestamp + signature.token)). The signature covers the
// timestamp and token only, not event-data: see Verify for what that means.
// event-data.timestamp is Unix seconds with a fraction (a withdrawal
// without a readable one is dated at arrival, never dropped).
//
// Mailgun retries a delivery that is not answered 200 (or 406) for up to
// 8 hours (10 min, 10 min, 15 min, 30 min, 1 h, 2 h, 4 h), and a retry
// re-sends the original signature block.
//
// Replays: event-data, including event-data.id, is not signed, so the
// inbox key (Batch.DedupKey) is the signed token ("token:" + token): the
// unique (source, dedup key) of the inbox in Postgres stores the first body
// carrying a token and answers every later one as a duplicate, across
// restarts and replicas. See Verify and Parse.
package mailgun

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// RetryWindow is how long Mailgun keeps retrying a delivery with its
// original signature. Verify accepts signature timestamps up to
// RetryWindow + tolerance old.
const RetryWindow = 8 * time.Hour

// DefaultTolerance is used when cfg.Tolerance is zero.
const DefaultTolerance = connectors.DefaultTolerance

// ReplayCacheSize bounds the tokens one Source remembers.
const ReplayCacheSize = 50_000

// Source verifies and parses one Mailgun account's webhooks. It is safe for
// concurrent use.
type Source struct {
	cfg       config.Source
	tolerance time.Duration
	seen      *replayCache
}

var _ connectors.Source = (*Source)(nil)

// NewSource builds a Mailgun source. cfg.Secrets are HTTP webhook signing
// keys (several allow rotation). cfg.Tolerance (default 5m) bounds how far in
// the future a signature timestamp may be; the past bound is
// RetryWindow + cfg.Tolerance, because Mailgun's retries are legitimately
// late and keep their first signature.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	if err := connectors.CheckSource(cfg, "the HTTP webhook signing key"); err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, tolerance: connectors.Tolerance(cfg.Tolerance), seen: newReplayCache(ReplayCacheSize)}, nil
}

// signatureBlock is the only part of the body Verify reads.
type signatureBlock struct {
	Signature struct {
		Timestamp json.RawMessage `json:"timestamp"`
		Token     json.RawMessage `json:"token"`
		Signature json.RawMessage `json:"signature"`
	} `json:"signature"`
}

// Verify checks the body's signature block:
//
//  1. signature = hex(HMAC-SHA256(key, timestamp + token)) for one of
//     cfg.Secrets (constant-time compare, every key tried);
//  2. the timestamp is at most tolerance ahead of now and at most
//     RetryWindow + tolerance behind it (errors also wrap ErrStale);
//  3. the token was not seen before, in this process, with a different
//     body.
//
// Mailgun's scheme forces Verify to decode the JSON body to find those three
// fields (nothing else is read). Because the signature does not cover
// event-data, whoever captures one signed request could attach it to another
// event-data until the timestamp expires. The real guard against that is
// the inbox: Parse keys every body by its signed token ("token:" + token),
// so Postgres' unique (source, dedup key) keeps the first body that carried
// a token and answers any later body with the same token as a duplicate,
// whatever its event-data, after a restart and on every replica.
//
// Step 3 is a fast path in front of it: the token cache lives in this
// process's memory, holds at most ReplayCacheSize tokens (oldest evicted
// first), forgets a token when its timestamp leaves the window, and refuses
// (401) a known token that comes back with different bytes. The same token
// with the same bytes is accepted on purpose: it is Mailgun retrying after a
// lost answer or a 503 (it re-sends the original signature), and the inbox
// stores it once. Refusing it would turn one failed answer into eight hours
// of refused retries and a lost unsubscribe.
//
// Errors wrap connectors.ErrUnauthorized; a body whose signature block cannot
// be read also wraps connectors.ErrMalformed.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	if r == nil {
		return connectors.Unauthorized("no request")
	}
	var sb signatureBlock
	if err := json.Unmarshal(r.Body, &sb); err != nil {
		return fmt.Errorf("%w: %w: body is not a JSON object with a signature block", connectors.ErrUnauthorized, connectors.ErrMalformed)
	}
	ts := connectors.JSONScalar(sb.Signature.Timestamp)
	token := connectors.JSONString(sb.Signature.Token)
	sig := connectors.JSONString(sb.Signature.Signature)
	if ts == "" || token == "" || sig == "" {
		return connectors.Unauthorized("signature block needs timestamp, token and signature")
	}
	ok := connectors.AnySecret(s.cfg.Secrets, func(key string) bool {
		return connectors.EqualHex(sig, connectors.HMAC("sha256", []byte(key), []byte(ts), []byte(token)))
	})
	if !ok {
		return connectors.Unauthorized("signature does not match timestamp and token")
	}
	at, ok := connectors.ParseUnix(ts, "s")
	if !ok {
		return connectors.Unauthorized("signature timestamp is not Unix seconds")
	}
	maxAge := RetryWindow + s.tolerance
	switch {
	case at.After(now.Add(s.tolerance)):
		return fmt.Errorf("%w: %w: signature timestamp %s ahead of now, tolerance %s",
			connectors.ErrUnauthorized, connectors.ErrStale, at.Sub(now).Round(time.Second), s.tolerance)
	case now.Sub(at) > maxAge:
		return fmt.Errorf("%w: %w: signature timestamp %s old, limit %s (retry window + tolerance)",
			connectors.ErrUnauthorized, connectors.ErrStale, now.Sub(at).Round(time.Second), maxAge)
	}
	if !s.seen.remember(token, sha256.Sum256(r.Body), at.Add(maxAge), now) {
		return connectors.Unauthorized("signature token already used with a different body (replay)")
	}
	return nil
}

// Parse turns one event into a Batch:
//
//	unsubscribed, complained      withdrawal of cfg.Brand's email marketing
//	failed + severity permanent   Batch.Undeliverable
//	delivered, opened, clicked    a consent.Activity (delivered, open, click) of cfg.Brand on email
//	anything else                 skipped
//
// occurred_at is event-data.timestamp (float Unix seconds, sub-second
// precision kept, UTC). Evidence.EventID is event-data.id, Evidence.Event the
// event name.
//
// DedupKey is "token:" + signature.token, the signed part of the body (see
// TokenDedupKey), not event-data.id, which is unsigned: two bodies with the
// same signature block are one delivery for the inbox, whatever their
// event-data. It is "" (the caller hashes the body) only when the body has
// no string token, which Verify never lets through. A body that is not a
// JSON object returns an error wrapping connectors.ErrMalformed; a readable
// body without a usable event is skipped.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	obj, err := connectors.JSONObject(r)
	if err != nil {
		return nil, err
	}
	b := &connectors.Batch{}
	var sb signatureBlock
	if json.Unmarshal(r.Body, &sb) == nil {
		if token := connectors.JSONString(sb.Signature.Token); token != "" {
			b.DedupKey = TokenDedupKey(token)
		}
	}
	var ed map[string]json.RawMessage
	if err := json.Unmarshal(obj["event-data"], &ed); err != nil || ed == nil {
		b.Skipped = append(b.Skipped, "no event-data object")
		return b, nil
	}
	id := strings.TrimSpace(connectors.JSONString(ed["id"]))
	event := connectors.JSONString(ed["event"])
	recipient := connectors.JSONString(ed["recipient"])
	if strings.TrimSpace(recipient) != "" {
		b.Named = append(b.Named, consent.Subject{Email: recipient}) // whatever the event means
	}

	var kind consent.ActivityKind
	switch event {
	case "unsubscribed", "complained":
	case "delivered":
		kind = consent.ActivityDelivered
	case "opened":
		kind = consent.ActivityOpen
	case "clicked":
		kind = consent.ActivityClick
	case "failed":
		if connectors.JSONString(ed["severity"]) != "permanent" {
			b.Skipped = append(b.Skipped, "event failed: temporary failure, not consent")
			return b, nil
		}
		if strings.TrimSpace(recipient) == "" {
			b.Skipped = append(b.Skipped, "event failed: no recipient")
			return b, nil
		}
		b.Undeliverable = append(b.Undeliverable, recipient)
		return b, nil
	case "":
		b.Skipped = append(b.Skipped, "event-data: no event")
		return b, nil
	default:
		b.Skipped = append(b.Skipped, fmt.Sprintf("event %q: no consent meaning", connectors.Clip(event, connectors.MaxQuoted)))
		return b, nil
	}
	if strings.TrimSpace(recipient) == "" {
		b.Skipped = append(b.Skipped, "event "+event+": no recipient")
		return b, nil
	}
	at, ok := floatSeconds(ed["timestamp"])
	switch {
	case !ok && kind == "" && !r.ReceivedAt.IsZero():
		// A withdrawal is never dropped for a bad date: it is dated when it
		// reached us (later than it occurred, so it wins over older grants).
		at = r.ReceivedAt.UTC()
		b.Skipped = append(b.Skipped, "event "+event+": no readable timestamp: dated at arrival")
	case !ok:
		b.Skipped = append(b.Skipped, "event "+event+": no readable timestamp")
		return b, nil
	}
	if kind != "" {
		b.Activities = append(b.Activities, connectors.EmailActivity(s.cfg, recipient, kind, at))
		return b, nil
	}
	b.Signals = append(b.Signals, connectors.EmailWithdrawal(s.cfg, recipient, at, consent.Evidence{EventID: id, Event: event}))
	return b, nil
}

// maxTokenKey is the longest token used verbatim in a dedup key.
const maxTokenKey = 256

// TokenDedupKey is the inbox key of a body signed with token: "token:" +
// token (Mailgun's tokens are 50 characters). A token longer than 256
// bytes or holding anything but printable ASCII (which Mailgun never
// sends, and a Postgres text key could not hold, e.g. NUL) is keyed as
// "token-sha256:" + its hex SHA-256 instead.
func TokenDedupKey(token string) string {
	ok := len(token) <= maxTokenKey
	for i := 0; ok && i < len(token); i++ {
		ok = token[i] > 0x20 && token[i] < 0x7f
	}
	if ok {
		return "token:" + token
	}
	sum := sha256.Sum256([]byte(token))
	return "token-sha256:" + hex.EncodeToString(sum[:])
}

// floatSeconds reads Unix seconds with an optional fraction ("1763635499.25",
// as a JSON number or string) without going through float64 for the
// fraction, so 10:44:59.25 stays exactly .25. Exponent forms fall back to
// float64 (microsecond-level precision). It returns false for anything not
// between 1970 and year 9999.
func floatSeconds(raw json.RawMessage) (time.Time, bool) {
	v := strings.TrimSpace(connectors.JSONScalar(raw))
	const maxSec = 253402300799 // 9999-12-31T23:59:59Z
	if strings.ContainsAny(v, "eE") {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > maxSec || math.IsNaN(f) {
			return time.Time{}, false
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC(), true
	}
	intPart, fracPart, _ := strings.Cut(v, ".")
	sec, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || sec <= 0 || sec > maxSec {
		return time.Time{}, false
	}
	var nsec int64
	if fracPart != "" {
		if len(fracPart) > 9 {
			fracPart = fracPart[:9]
		}
		for _, c := range fracPart {
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
		}
		n, _ := strconv.ParseInt(fracPart+strings.Repeat("0", 9-len(fracPart)), 10, 64)
		nsec = n
	}
	return time.Unix(sec, nsec).UTC(), true
}

// replayCache remembers, for each signature token seen inside the window,
// the hash of the body it came with. It is bounded (oldest first out) and
// safe for concurrent use.
type replayCache struct {
	mu      sync.Mutex
	max     int
	seq     uint64
	entries map[string]replayEntry
	order   []orderItem // insertion order; order[head:] are live candidates
	head    int
}

type replayEntry struct {
	body    [32]byte
	expires time.Time
	seq     uint64
}

type orderItem struct {
	token string
	seq   uint64
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, entries: make(map[string]replayEntry)}
}

// remember records token with the body's hash until expires. It reports
// false when the token is already known (and not expired) with another body.
func (c *replayCache) remember(token string, body [32]byte, expires, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Drop expired entries from the front (entries arrive roughly in
	// timestamp order, so the front expires first).
	for c.head < len(c.order) {
		it := c.order[c.head]
		e, ok := c.entries[it.token]
		if ok && e.seq == it.seq && now.Before(e.expires) {
			break
		}
		if ok && e.seq == it.seq {
			delete(c.entries, it.token)
		}
		c.popFront()
	}
	if e, ok := c.entries[token]; ok && now.Before(e.expires) {
		return e.body == body
	}
	for len(c.entries) >= c.max && c.head < len(c.order) {
		it := c.order[c.head]
		if e, ok := c.entries[it.token]; ok && e.seq == it.seq {
			delete(c.entries, it.token)
		}
		c.popFront()
	}
	c.seq++
	c.entries[token] = replayEntry{body: body, expires: expires, seq: c.seq}
	c.order = append(c.order, orderItem{token: token, seq: c.seq})
	return true
}

func (c *replayCache) popFront() {
	c.order[c.head] = orderItem{}
	c.head++
	if c.head == len(c.order) {
		c.order, c.head = c.order[:0], 0
		return
	}
	if c.head >= 1024 && c.head*2 >= len(c.order) {
		c.order = append([]orderItem(nil), c.order[c.head:]...)
		c.head = 0
	}
}

// len is the number of remembered tokens (for tests).
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
