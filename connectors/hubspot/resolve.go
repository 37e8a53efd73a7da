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

// Resolve fills Subject.Email of the signals that name a HubSpot contact by
// id (Subject.ExternalID "hubspot:contact:<id>" and no email), from
//
//	GET {api_base_url}/crm/v3/objects/contacts/{id}?properties=email
//	Authorization: Bearer {api_token}
//
// (https://developers.hubspot.com/docs/api/crm/contacts). Answers are cached
// in memory (10,000 contacts, 10 minutes). Other signals pass through
// unchanged.
//
// A contact HubSpot answers 404 for (deleted or merged away), or one without
// an email, is dropped and reported in skipped ("signal 2: contact gone at
// HubSpot (404)"). Any other failure is returned as an error and nothing is
// resolved: the worker retries the task (an error wrapping
// connectors.ErrPermanent, such as 401 for a bad token, will not heal by
// itself).
func (s *Source) Resolve(ctx context.Context, signals []consent.Signal) ([]consent.Signal, []string, error) {
	out := make([]consent.Signal, 0, len(signals))
	var skipped []string
	type answer struct {
		email string
		found bool
	}
	seen := map[string]answer{}
	for i, sig := range signals {
		id, ok := contactID(sig.Subject)
		if !ok || sig.Subject.Email != "" {
			out = append(out, sig)
			continue
		}
		a, done := seen[id]
		if !done {
			email, found, err := s.contactEmail(ctx, id)
			if err != nil {
				return nil, nil, err
			}
			a = answer{email, found}
			seen[id] = a
		}
		switch {
		case !a.found:
			skipped = append(skipped, fmt.Sprintf("signal %d: contact gone at HubSpot (404)", i+1))
		case a.email == "":
			skipped = append(skipped, fmt.Sprintf("signal %d: contact has no email at HubSpot", i+1))
		default:
			sig.Subject.Email = a.email
			out = append(out, sig)
		}
	}
	return out, skipped, nil
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
