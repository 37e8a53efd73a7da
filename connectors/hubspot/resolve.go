package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mapping"
	"github.com/consentsync/consentsync/consent"
)

// BatchReadPath is HubSpot's CRM v3 batch read of contacts
// (https://developers.hubspot.com/docs/api/crm/contacts, "Retrieve contacts
// by record ID ... in batches").
const BatchReadPath = "/crm/v3/objects/contacts/batch/read"

// MaxBatchRead is the most inputs HubSpot accepts in one batch read call;
// more is refused with 400 VALIDATION_ERROR ("The maximum number of inputs
// supported in a batch is 100").
const MaxBatchRead = 100

// batchReadParallel bounds the batch read calls one Resolve has in flight.
// HubSpot's burst limit for a private app is 100 or 190 calls per 10 s
// (shared by every app of the portal); 4 calls in flight resolve 10,000
// contacts in 25 round trips and stay near that budget. A 429 is retried by
// the HTTP client (connectors.NewHTTPClient).
const batchReadParallel = 4

// Properties asked for: the email, and the ids merged into a contact, so
// that an id merged away is matched to the contact HubSpot answers with
// (whose id differs from the one asked for).
const (
	emailProperty  = "email"
	mergedProperty = "hs_merged_object_ids"
)

// Resolve fills, in place, Subject.Email of the items of b that name a
// HubSpot contact by id (Subject.ExternalID "hubspot:contact:<id>" and no
// email): b.Signals, b.Activities and b.Profiles. The emails come from
// HubSpot's batch read, at most MaxBatchRead contacts a call:
//
//	POST {api_base_url}/crm/v3/objects/contacts/batch/read
//	Authorization: Bearer {api_token}
//	{"properties": ["email", "hs_merged_object_ids"], "inputs": [{"id": "501"}, ...]}
//
// answered 200, or 207 when some contacts are missing: "results" holds the
// contacts found ({"id", "properties": {"email", ...}}), "errors" an
// OBJECT_NOT_FOUND entry whose context.ids lists the missing ones. A
// contact merged into another is answered as the surviving contact, whose
// hs_merged_object_ids names the id asked for. ExternalID is kept so that
// the store learns the id. Emails are cached in memory (a bounded LRU,
// cacheSize contacts, each for cacheTTL so that a changed email is read
// again); a cached contact is not asked for, and each contact is asked for
// once per call. Items that already have an email, or no HubSpot id, are
// left as they are. b.Erasures are not resolved: the contact is already
// gone at HubSpot, and the store maps the external ids it has seen.
//
// An item whose contact HubSpot reports missing (deleted or archived),
// or leaves out of its answer, or one without an email, is dropped from b
// and reported in skipped ("signal 2: contact gone at HubSpot (404)",
// "profile 1: contact has no email at HubSpot", "activity 3: contact not in
// HubSpot's answer"; numbers count from 1 within each list). Any other
// failure (including a per-contact error other than OBJECT_NOT_FOUND in a
// 207) is returned as an error and b is left unchanged: the worker retries
// the task (an error wrapping connectors.ErrPermanent, such as 401 for a bad
// token, will not heal by itself). Contacts read before the failure stay
// cached, so the retry asks only for the rest.
func (s *Source) Resolve(ctx context.Context, b *connectors.Batch) ([]string, error) {
	if b == nil {
		return nil, nil
	}
	// Look every contact up before changing anything, so that an error
	// leaves the batch as it was.
	answers := map[string]answer{}
	var ask []string
	now := s.clock()
	want := func(sub consent.Subject) {
		id, ok := contactID(sub)
		if !ok || sub.Email != "" {
			return
		}
		if _, done := answers[id]; done {
			return
		}
		if email, ok := s.cache.get(id, now); ok {
			answers[id] = answer{email: email, found: true}
			return
		}
		answers[id] = answer{} // asked below
		ask = append(ask, id)
	}
	for _, sig := range b.Signals {
		want(sig.Subject)
	}
	for _, a := range b.Activities {
		want(a.Subject)
	}
	for _, p := range b.Profiles {
		want(p.Subject)
	}
	got, err := s.readContacts(ctx, ask)
	if err != nil {
		return nil, err
	}
	for _, id := range ask {
		answers[id] = got[id] // zero answer: not in HubSpot's answer
	}
	var skipped []string
	b.Signals = resolveItems(b.Signals, func(x *consent.Signal) *consent.Subject { return &x.Subject }, "signal", answers, &skipped)
	b.Activities = resolveItems(b.Activities, func(x *consent.Activity) *consent.Subject { return &x.Subject }, "activity", answers, &skipped)
	b.Profiles = resolveItems(b.Profiles, func(x *consent.ProfileFact) *consent.Subject { return &x.Subject }, "profile", answers, &skipped)
	return skipped, nil
}

// answer is what HubSpot said about one contact id: found with its email
// (possibly ""), gone (OBJECT_NOT_FOUND), or neither (the zero answer: the
// id was in no result and no error).
type answer struct {
	email string
	found bool
	gone  bool
}

// resolveItems sets the email of each item whose subject names a looked-up
// contact, drops (and reports) those whose contact is gone, missing or has
// no email, and returns the kept items, reusing items' array.
func resolveItems[T any](items []T, subject func(*T) *consent.Subject, label string, answers map[string]answer, skipped *[]string) []T {
	out := items[:0]
	for i := range items {
		it := items[i]
		sub := subject(&it)
		if id, ok := contactID(*sub); ok && sub.Email == "" {
			a := answers[id]
			switch {
			case a.gone:
				*skipped = append(*skipped, fmt.Sprintf("%s %d: contact gone at HubSpot (404)", label, i+1))
				continue
			case !a.found:
				*skipped = append(*skipped, fmt.Sprintf("%s %d: contact not in HubSpot's answer", label, i+1))
				continue
			case a.email == "":
				*skipped = append(*skipped, fmt.Sprintf("%s %d: contact has no email at HubSpot", label, i+1))
				continue
			}
			sub.Email = a.email
		}
		out = append(out, it)
	}
	clear(items[len(out):])
	return out
}

// contactID reads "hubspot:contact:<digits>".
func contactID(sub consent.Subject) (string, bool) {
	id, ok := strings.CutPrefix(sub.ExternalID, ExternalIDPrefix)
	return id, ok && intText(id) != ""
}

// readContacts asks HubSpot for ids (distinct), MaxBatchRead a call and
// batchReadParallel calls at a time, caches the emails found and returns
// every answer by id. The first failing call cancels the others and its
// error is returned.
func (s *Source) readContacts(ctx context.Context, ids []string) (map[string]answer, error) {
	out := make(map[string]answer, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, batchReadParallel)
	for start := 0; start < len(ids); start += MaxBatchRead {
		chunk := ids[start:min(start+MaxBatchRead, len(ids))]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got, err := s.batchRead(ctx, chunk)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				return
			}
			now := s.clock()
			for _, id := range chunk { // in order: the LRU's recency follows the batch
				a, ok := got[id]
				if !ok {
					continue
				}
				out[id] = a
				if a.found && a.email != "" {
					s.cache.put(id, a.email, now)
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("hubspot: contact lookup: %w", err)
	}
	return out, nil
}

// batchReadRequest is the body of a batch read call.
type batchReadRequest struct {
	Properties []string         `json:"properties"`
	Inputs     []batchReadInput `json:"inputs"`
}

type batchReadInput struct {
	ID string `json:"id"`
}

// batchRead makes one batch read call for at most MaxBatchRead ids.
func (s *Source) batchRead(ctx context.Context, ids []string) (map[string]answer, error) {
	in := batchReadRequest{Properties: []string{emailProperty, mergedProperty}, Inputs: make([]batchReadInput, len(ids))}
	for i, id := range ids {
		in.Inputs[i].ID = id
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("hubspot: contact lookup: %w", err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, s.apiBase+BatchReadPath, body)
	if err != nil {
		return nil, fmt.Errorf("hubspot: contact lookup: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.apiToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := connectors.Do(s.http, req, s.apiToken)
	if err != nil {
		return nil, fmt.Errorf("hubspot: contact lookup: %w", err)
	}
	return parseBatchRead(resp.Body, ids)
}

// parseBatchRead reads a batch read answer (200 or 207) to a call that
// asked for ids, and returns what it says of each of them:
//
//   - a result whose "id" was asked for, or whose hs_merged_object_ids
//     (";"-separated) names an id asked for: found, with
//     properties.email trimmed (possibly "");
//   - an id listed in the context.ids of an OBJECT_NOT_FOUND error: gone;
//   - an id in neither: absent from the map.
//
// A result wins over an error naming the same id. Results and ids not
// asked for are ignored. An error of any other category, or a body that is
// not a JSON object with a "results" array (HubSpot sends one, possibly
// empty, with every 200 and 207), is returned as an error (transient: the
// task is retried).
func parseBatchRead(body []byte, ids []string) (map[string]answer, error) {
	var ans struct {
		Results []struct {
			ID         any            `json:"id"`
			Properties map[string]any `json:"properties"`
		} `json:"results"`
		Errors []struct {
			Category string         `json:"category"`
			Context  map[string]any `json:"context"`
		} `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&ans); err != nil {
		return nil, errors.New("hubspot: contact lookup: unreadable answer (want a batch read JSON object)")
	}
	if ans.Results == nil {
		return nil, errors.New("hubspot: contact lookup: unreadable answer (no \"results\" array)")
	}
	asked := make(map[string]bool, len(ids))
	for _, id := range ids {
		asked[id] = true
	}
	out := map[string]answer{}
	var other []string
	for _, e := range ans.Errors {
		if e.Category != "OBJECT_NOT_FOUND" {
			other = append(other, connectors.ClipUTF8(connectors.Redact(e.Category, ""), 64))
			continue
		}
		list, _ := e.Context["ids"].([]any)
		for _, v := range list {
			if id := intText(v); asked[id] {
				out[id] = answer{gone: true}
			}
		}
	}
	for _, r := range ans.Results {
		email, _ := mapping.Text(r.Properties[emailProperty])
		a := answer{email: strings.TrimSpace(email), found: true}
		if id := intText(r.ID); asked[id] {
			out[id] = a
		}
		merged, _ := mapping.Text(r.Properties[mergedProperty])
		for m := range strings.SplitSeq(merged, ";") {
			if id := intText(strings.TrimSpace(m)); asked[id] {
				if prev, ok := out[id]; !ok || !prev.found {
					out[id] = a
				}
			}
		}
	}
	if len(other) > 0 {
		sort.Strings(other)
		other = compactStrings(other)
		return nil, fmt.Errorf("hubspot: contact lookup: HubSpot answered errors %s for some contacts", strings.Join(other, ", "))
	}
	return out, nil
}

// compactStrings drops adjacent repeats of a sorted slice.
func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// contactCache is a bounded, concurrency-safe LRU of contact id → email
// (hashicorp/golang-lru/v2/expirable). Each entry also carries its expiry
// by the source's clock (Deps.Now): the LRU's own TTL frees memory in real
// time, the stored expiry decides what a lookup sees.
type contactCache struct {
	lru *expirable.LRU[string, cachedEmail]
	ttl time.Duration
}

type cachedEmail struct {
	email   string
	expires time.Time
}

func newContactCache(size int, ttl time.Duration) *contactCache {
	return &contactCache{lru: expirable.NewLRU[string, cachedEmail](size, nil, ttl), ttl: ttl}
}

func (c *contactCache) get(id string, now time.Time) (string, bool) {
	v, ok := c.lru.Get(id)
	if !ok {
		return "", false
	}
	if !now.Before(v.expires) {
		c.lru.Remove(id)
		return "", false
	}
	return v.email, true
}

func (c *contactCache) put(id, email string, now time.Time) {
	c.lru.Add(id, cachedEmail{email: email, expires: now.Add(c.ttl)})
}

func (c *contactCache) len() int { return c.lru.Len() }
