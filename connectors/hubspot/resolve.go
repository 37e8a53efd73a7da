package hubspot

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mapping"
	"github.com/consentsync/consentsync/consent"
)

// Resolve fills, in place, Subject.Email of the items of b that name a
// HubSpot contact by id (Subject.ExternalID "hubspot:contact:<id>" and no
// email): b.Signals, b.Activities and b.Profiles. The email comes from
//
//	GET {api_base_url}/crm/v3/objects/contacts/{id}?properties=email
//	Authorization: Bearer {api_token}
//
// (https://developers.hubspot.com/docs/api/crm/contacts); ExternalID is kept
// so that the store learns the id. Answers are cached in memory (10,000
// contacts, 10 minutes); each contact is asked for once per call. Items that
// already have an email, or no HubSpot id, are left as they are.
// b.Erasures are not resolved: the contact is already gone at HubSpot, and
// the store maps the external ids it has seen.
//
// An item whose contact HubSpot answers 404 for (deleted or merged away), or
// one without an email, is dropped from b and reported in skipped ("signal
// 2: contact gone at HubSpot (404)", "profile 1: contact has no email at
// HubSpot"; numbers count from 1 within each list). Any other failure is
// returned as an error and b is left unchanged: the worker retries the task
// (an error wrapping connectors.ErrPermanent, such as 401 for a bad token,
// will not heal by itself).
func (s *Source) Resolve(ctx context.Context, b *connectors.Batch) ([]string, error) {
	if b == nil {
		return nil, nil
	}
	// Look every contact up before changing anything, so that an error
	// leaves the batch as it was.
	answers := map[string]answer{}
	lookup := func(sub consent.Subject) error {
		id, ok := contactID(sub)
		if !ok || sub.Email != "" {
			return nil
		}
		if _, done := answers[id]; done {
			return nil
		}
		email, found, err := s.contactEmail(ctx, id)
		if err != nil {
			return err
		}
		answers[id] = answer{email, found}
		return nil
	}
	for _, sig := range b.Signals {
		if err := lookup(sig.Subject); err != nil {
			return nil, err
		}
	}
	for _, a := range b.Activities {
		if err := lookup(a.Subject); err != nil {
			return nil, err
		}
	}
	for _, p := range b.Profiles {
		if err := lookup(p.Subject); err != nil {
			return nil, err
		}
	}
	var skipped []string
	b.Signals = resolveItems(b.Signals, func(x *consent.Signal) *consent.Subject { return &x.Subject }, "signal", answers, &skipped)
	b.Activities = resolveItems(b.Activities, func(x *consent.Activity) *consent.Subject { return &x.Subject }, "activity", answers, &skipped)
	b.Profiles = resolveItems(b.Profiles, func(x *consent.ProfileFact) *consent.Subject { return &x.Subject }, "profile", answers, &skipped)
	return skipped, nil
}

// answer is what HubSpot said about one contact id.
type answer struct {
	email string
	found bool
}

// resolveItems sets the email of each item whose subject names a looked-up
// contact, drops (and reports) those whose contact is gone or has no email,
// and returns the kept items, reusing items' array.
func resolveItems[T any](items []T, subject func(*T) *consent.Subject, label string, answers map[string]answer, skipped *[]string) []T {
	out := items[:0]
	for i := range items {
		it := items[i]
		sub := subject(&it)
		if id, ok := contactID(*sub); ok && sub.Email == "" {
			a := answers[id]
			switch {
			case !a.found:
				*skipped = append(*skipped, fmt.Sprintf("%s %d: contact gone at HubSpot (404)", label, i+1))
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

// contactEmail returns the contact's email (possibly "" when it has none),
// found=false on 404, or an error.
func (s *Source) contactEmail(ctx context.Context, id string) (string, bool, error) {
	now := s.clock()
	if email, ok := s.cache.get(id, now); ok {
		return email, true, nil
	}
	u := s.apiBase + "/crm/v3/objects/contacts/" + url.PathEscape(id) + "?properties=email"
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", false, fmt.Errorf("hubspot: contact lookup: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.apiToken)
	req.Header.Set("Accept", "application/json")
	resp, err := connectors.Do(s.http, req, s.apiToken)
	if resp != nil && resp.Status == http.StatusNotFound {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("hubspot: contact lookup: %w", err)
	}
	var body struct {
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return "", false, errors.New("hubspot: contact lookup: unreadable answer (want a JSON object)")
	}
	email, _ := mapping.Text(body.Properties["email"])
	email = strings.TrimSpace(email)
	if email != "" {
		s.cache.put(id, email, now)
	}
	return email, true, nil
}

// cache is a bounded, concurrency-safe LRU of contact id → email whose
// entries expire after ttl.
type cache struct {
	mu  sync.Mutex
	max int
	ttl time.Duration
	ll  *list.List // front = most recently used
	m   map[string]*list.Element
}

type cacheEntry struct {
	key, email string
	expires    time.Time
}

func newCache(max int, ttl time.Duration) *cache {
	return &cache{max: max, ttl: ttl, ll: list.New(), m: map[string]*list.Element{}}
}

func (c *cache) get(key string, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return "", false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.m, key)
		return "", false
	}
	c.ll.MoveToFront(el)
	return e.email, true
}

func (c *cache) put(key, email string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		e := el.Value.(*cacheEntry)
		e.email, e.expires = email, now.Add(c.ttl)
		c.ll.MoveToFront(el)
		return
	}
	c.m[key] = c.ll.PushFront(&cacheEntry{key: key, email: email, expires: now.Add(c.ttl)})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).key)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
