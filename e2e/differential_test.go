package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/internal/cli"
)

// person is one random person of a differential history: the addresses
// they use (aliases of one Gmail mailbox), the ones nobody sent but that
// are the same mailbox, a number linked to them, and a work address linked
// through the same number.
type person struct {
	used   []string // literal addresses the history posts
	unseen []string // aliases never posted: still the same person
	phone  string   // linked through an SMS opt-in ("" when none)
	work   string   // a professional address given with the same number
}

// members are every identifier that must give the same answer.
func (p person) members() []string {
	out := append(slices.Clone(p.used), p.unseen...)
	if p.phone != "" {
		out = append(out, p.phone)
	}
	if p.work != "" {
		out = append(out, p.work)
	}
	return out
}

// historyEvent is one webhook (or erasure) of a differential history.
type historyEvent struct {
	at   time.Time
	post func(e *env)
	what string
}

// differentialEnv is rulesEnv with a second collecting brand ("beta", with
// its own boxes) so that brand scoping is exercised.
func differentialEnv(t *testing.T) *env {
	return start(t, envOptions{mutate: func(c *configT) {
		c.Destinations = append(c.Destinations, config.Destination{Name: "sendgrid-beta", Kind: "sendgrid", Brand: "beta",
			Channels: []string{"email", "sms"}, Purposes: []string{"marketing"}, BaseURL: c.Destinations[0].BaseURL, APIKey: c.Destinations[0].APIKey, Timeout: 10 * time.Second})
		c.Policy.ProfessionalDomains = []string{"acme-corp.fr"}
		for i := range c.Sources {
			if c.Sources[i].Name == "signup-form" {
				f := c.Sources[i].Fields
				f.Profile, f.Phone = "profile", "phone"
				f.Consents = append(f.Consents,
					config.ConsentField{Field: "email_pref", Channel: "email", Purpose: "marketing", Withdrawal: true},
					config.ConsentField{Field: "sms_pref", Channel: "sms", Purpose: "marketing", Withdrawal: true},
					config.ConsentField{Field: "beta_news", Channel: "email", Purpose: "marketing", Brand: "beta", Withdrawal: true})
			}
		}
	}})
}

// TestDifferentialViews: random histories — opt-ins, withdrawals through a
// form and through a provider, erasures, customers, professional
// addresses, Gmail aliases and linked numbers, out-of-order delivery, two
// brands — go through the real pipeline; then, for every member of every
// identity set × brand × channel × purpose, the eligibility API, the
// batch eligibility API, the subject view (API), `consentsync subject`'s
// output and `consentsync expiring` must give one answer.
func TestDifferentialViews(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			t.Parallel()
			differential(t, seed)
		})
	}
}

func differential(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	e := differentialEnv(t)
	now := time.Now().UTC()
	var people []person
	var events, links []historyEvent
	erase := map[int]bool{}
	for i := 0; i < 5; i++ {
		local := fmt.Sprintf("p%d.s%d.user", i, seed)
		flat := strings.ReplaceAll(local, ".", "")
		p := person{
			used:   []string{local + "@gmail.com", flat + "+promo@gmail.com", strings.ToUpper(local[:1]) + local[1:] + "@googlemail.com"},
			unseen: []string{flat + "@gmail.com", flat + "+other@googlemail.com"},
		}
		if rng.IntN(2) == 0 {
			p.phone = fmt.Sprintf("+336%d%d%06d", seed%10, i, rng.IntN(1000000))
			if rng.IntN(2) == 0 {
				p.work = fmt.Sprintf("%s@acme-corp.fr", flat)
			}
		}
		people = append(people, p)
		// Times within the last 4 years, some beyond the 3-year ttl.
		at := func() time.Time {
			return now.Add(-time.Duration(rng.Int64N(int64(4 * 365 * 24 * time.Hour)))).Truncate(time.Second)
		}
		// The number is given with an address (and the work address with
		// the number) before anything else is delivered, so the set is one
		// person from the start.
		if p.phone != "" {
			for _, with := range []string{p.used[0], p.work} {
				if with == "" {
					continue
				}
				fields := map[string]any{"email": with, "phone": p.phone, "submitted_at": at().Format(time.RFC3339), "sms_pref": "on", "consent_version": "v3"}
				links = append(links, historyEvent{now, func(e *env) { e.submit(fields) }, "link " + with + " " + p.phone})
			}
		}
		n := 3 + rng.IntN(5)
		for j := 0; j < n; j++ {
			addr := p.used[rng.IntN(len(p.used))]
			t0 := at()
			switch k := rng.IntN(8); k {
			case 0, 1: // form opt-in
				fields := map[string]any{"email": addr, "submitted_at": t0.Format(time.RFC3339), "newsletter": "on", "consent_version": "v3"}
				if rng.IntN(2) == 0 {
					fields["beta_news"] = "on"
				}
				events = append(events, historyEvent{t0, func(e *env) { e.submit(fields) }, "opt-in " + addr})
			case 2: // form withdrawal (preference centre)
				fields := map[string]any{"email": addr, "submitted_at": t0.Format(time.RFC3339), "email_pref": false}
				if rng.IntN(2) == 0 {
					fields["beta_news"] = false
				}
				events = append(events, historyEvent{t0, func(e *env) { e.submit(fields) }, "form withdrawal " + addr})
			case 3: // provider withdrawal (Postmark unsubscribe of an alias)
				events = append(events, historyEvent{t0, func(e *env) { e.postmarkUnsubscribe(addr, t0) }, "postmark withdrawal " + addr})
			case 4: // customer
				fields := map[string]any{"email": addr, "submitted_at": t0.Format(time.RFC3339), "profile": "customer"}
				events = append(events, historyEvent{t0, func(e *env) { e.submit(fields) }, "customer " + addr})
			case 5, 6: // SMS opt-in or withdrawal with the linked number (and the work address)
				if p.phone == "" {
					continue
				}
				with := addr
				if p.work != "" && rng.IntN(2) == 0 {
					with = p.work
				}
				val := any("on")
				if k == 6 {
					val = false
				}
				fields := map[string]any{"email": with, "phone": p.phone, "submitted_at": t0.Format(time.RFC3339), "sms_pref": val, "consent_version": "v3"}
				events = append(events, historyEvent{t0, func(e *env) { e.submit(fields) }, "sms " + with})
			case 7:
				if rng.IntN(3) == 0 {
					erase[i] = true
				}
			}
		}
	}
	// Out-of-order delivery: post in a random order, not by occurrence.
	rng.Shuffle(len(events), func(a, b int) { events[a], events[b] = events[b], events[a] })
	for _, ev := range links {
		ev.post(e)
	}
	e.waitDrained()
	events = append(links, events...)
	half := len(links) + (len(events)-len(links))/2
	for _, ev := range events[len(links):half] {
		ev.post(e)
	}
	e.waitDrained()
	// Erase some people mid-history (through any member), then deliver the
	// rest: older facts about them must not bring them back.
	for i := range people {
		if erase[i] {
			m := people[i].members()
			if r := e.admin("DELETE", "/v1/subjects/"+m[rng.IntN(len(m))]); r.Status != 200 && r.Status != 404 {
				t.Fatalf("erase: HTTP %d: %s", r.Status, r.Body)
			}
		}
	}
	e.waitDrained()
	for _, ev := range events[half:] {
		ev.post(e)
	}
	e.waitDrained()

	// The expiring list, with a window that holds every permission.
	expiring, err := e.App.Service.Expiring(context.Background(), 100*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var expOut bytes.Buffer
	if err := cli.PrintExpiring(&expOut, expiring, "36500d", time.Hour); err != nil {
		t.Fatal(err)
	}
	// By the person's first identity (oldest member), as the subject view
	// names it.
	type expKey struct{ person, key string }
	listed := map[expKey]string{}
	for _, x := range expiring {
		k := expKey{x.Identities[0].Email + x.Identities[0].Phone, fmt.Sprintf("%s/%s/%s", x.Key.Brand, x.Key.Channel, x.Key.Purpose)}
		if !x.Expired {
			listed[k] = x.ExpiresAt.UTC().Format(time.RFC3339Nano)
		}
	}

	brands := []string{"acme", "beta"}
	channels := []string{"email", "sms", "phone", "post"}
	purposes := []string{"marketing", "partners"}
	// Batch answers, one request per question, every member of everyone.
	var all []string
	for _, p := range people {
		all = append(all, p.members()...)
	}
	batch := map[string]map[string]any{}
	for _, b := range brands {
		for _, ch := range channels {
			for _, pu := range purposes {
				body, _ := json.Marshal(map[string]any{"channel": ch, "brand": b, "purpose": pu, "subjects": all})
				r := e.do("POST", "/v1/eligibility", "", http.Header{"Authorization": {"Bearer test-admin-token"}}, body)
				if r.Status != 200 {
					t.Fatalf("batch: HTTP %d: %s", r.Status, r.Body)
				}
				var out struct {
					Results []map[string]any `json:"results"`
				}
				if err := json.Unmarshal([]byte(r.Body), &out); err != nil {
					t.Fatal(err)
				}
				for i, res := range out.Results {
					batch[all[i]+"|"+b+"/"+ch+"/"+pu] = res
				}
			}
		}
	}
	for pi, p := range people {
		var first map[string]string // key → answer of the first member
		for _, id := range p.members() {
			view := e.admin("GET", "/v1/subjects/"+id)
			var cliOut bytes.Buffer
			if err := cli.PrintSubject(context.Background(), &cliOut, e.App.Service, id); err != nil && view.Status == 200 {
				t.Fatalf("%s: consentsync subject: %v", id, err)
			}
			cliRows := cliEligibility(cliOut.String())
			viewRows := map[string]map[string]any{}
			self := ""
			if view.Status == 200 {
				first := view.JSON["identities"].([]any)[0].(map[string]any)
				self = fmt.Sprint(first["email"]) + fmt.Sprint(first["phone"])
				self = strings.ReplaceAll(self, "<nil>", "")
				for _, x := range view.JSON["eligibility"].([]any) {
					a := x.(map[string]any)
					viewRows[fmt.Sprintf("%s/%s/%s", a["brand"], a["channel"], a["purpose"])] = a
				}
				for _, x := range view.JSON["consents"].([]any) {
					c := x.(map[string]any)
					k := fmt.Sprintf("%s/%s/%s", c["brand"], c["channel"], c["purpose"])
					if (c["status"] == "withdrawn") != (c["reason"] == "withdrawn") {
						t.Errorf("person %d %s %s: subject view consent says %v but its answer is %v", pi, id, k, c["status"], c["reason"])
					}
				}
			} else if view.Status != 404 {
				t.Fatalf("%s: subject view HTTP %d", id, view.Status)
			}
			answers := map[string]string{}
			for _, b := range brands {
				for _, ch := range channels {
					for _, pu := range purposes {
						k := b + "/" + ch + "/" + pu
						single := e.eligible(id, ch, b, pu)
						want := answerWord(single)
						answers[k] = want
						if got := answerWord(batch[id+"|"+k]); got != want {
							t.Errorf("person %d %s %s: batch %s, single %s", pi, id, k, got, want)
						}
						if view.Status == 200 {
							if got := answerWord(viewRows[k]); got != want {
								t.Errorf("person %d %s %s: subject view %s, eligibility API %s", pi, id, k, got, want)
							}
							if got := cliRows[k]; got != want {
								t.Errorf("person %d %s %s: consentsync subject %s, eligibility API %s", pi, id, k, got, want)
							}
						} else if single["reason"] != "erased" && single["reason"] != "unknown_subject" {
							t.Errorf("person %d %s: no subject view (HTTP %d) but eligibility %s", pi, id, view.Status, want)
						}
						exp, _ := single["expires_at"].(string)
						if single["allowed"] == true && exp != "" {
							if got, ok := listed[expKey{self, k}]; !ok && view.Status == 200 {
								t.Errorf("person %d %s %s: allowed until %s but not in expiring", pi, id, k, exp)
							} else if ok && !sameInstant(got, exp) {
								t.Errorf("person %d %s %s: expiring says %s, eligibility %s", pi, id, k, got, exp)
							}
						}
					}
				}
			}
			if first == nil {
				first = answers
				continue
			}
			for k, want := range first {
				if answers[k] != want {
					t.Errorf("person %d: %s answers %s for %s, another member %s", pi, id, answers[k], k, want)
				}
			}
		}
	}
	if t.Failed() {
		for _, ev := range events {
			t.Logf("history: %s at %s", ev.what, ev.at.Format(time.RFC3339))
		}
		t.Logf("expiring:\n%s", expOut.String())
	}
}

// answerWord is an answer as "allowed basis reason".
func answerWord(a map[string]any) string {
	if a == nil {
		return "<none>"
	}
	return fmt.Sprintf("%v %v %v", a["allowed"], a["basis"], a["reason"])
}

// sameInstant compares two RFC 3339 times as instants.
func sameInstant(a, b string) bool {
	ta, err1 := time.Parse(time.RFC3339Nano, a)
	tb, err2 := time.Parse(time.RFC3339Nano, b)
	return err1 == nil && err2 == nil && ta.Equal(tb)
}

// cliEligibility reads the "MAY WE SEND?" table of `consentsync subject`
// into key → "allowed basis reason".
func cliEligibility(out string) map[string]string {
	rows := map[string]string{}
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "MAY WE SEND?"):
			in = true
			continue
		case in && strings.TrimSpace(line) == "":
			return rows
		}
		f := strings.Fields(line)
		if !in || len(f) < 6 || f[0] == "BRAND" {
			continue
		}
		rows[f[0]+"/"+f[1]+"/"+f[2]] = f[3] + " " + f[4] + " " + f[5]
	}
	return rows
}

// postmarkUnsubscribe posts a Postmark subscription change for email at t:
// a provider-origin withdrawal.
func (e *env) postmarkUnsubscribe(email string, at time.Time) {
	e.t.Helper()
	body := fmt.Sprintf(`{"RecordType":"SubscriptionChange","MessageStream":"broadcast","ChangedAt":%q,"Recipient":%q,"SuppressSending":true,"SuppressionReason":"ManualSuppression"}`,
		at.UTC().Format(time.RFC3339), email)
	if r := e.do("POST", "/webhooks/postmark-acme", "token=pm-url-token-6a7c", http.Header{"Content-Type": {"application/json"}}, []byte(body)); r.Status != 202 {
		e.t.Fatalf("HTTP %d: %s", r.Status, r.Body)
	}
}
