package harness

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// Workload makes synthetic people and their submissions. Addresses are
// "<prefix>-<n>@example.com": synthetic, never a real person's.
// Submission times start an hour in the past and grow by 10 ms per event,
// so every (person, status, time) fact is distinct.
type Workload struct {
	// Prefix is the addresses' local-part prefix (unique per phase keeps
	// phases' people apart).
	Prefix string
	rng    *rand.Rand
	person int
	seq    int
	base   time.Time
}

// NewWorkload returns a Workload with a fixed seed (reproducible mixes).
func NewWorkload(prefix string, seed uint64) *Workload {
	return &Workload{Prefix: prefix, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		base: time.Now().Add(-time.Hour).Truncate(time.Millisecond)}
}

// NewEmail returns a new person's address.
func (w *Workload) NewEmail() string {
	w.person++
	return fmt.Sprintf("%s-%d@example.com", w.Prefix, w.person)
}

// Next returns a new event for email, later than every event made before.
func (w *Workload) Next(email string, withdraw bool) Event {
	w.seq++
	at := w.base.Add(time.Duration(w.seq) * 10 * time.Millisecond)
	return Event{Email: email, Withdraw: withdraw, OccurredAt: at, EventID: EventIDFor(email, withdraw, at)}
}

// Mix describes a stream of submissions.
type Mix struct {
	// People is how many people submit.
	People int
	// WithdrawFrac is the share of people who opt in and later withdraw
	// (the others only opt in).
	WithdrawFrac float64
	// DupFrac is the share of deliveries repeated (same event) a few
	// positions later.
	DupFrac float64
	// ReorderFrac is the share of withdrawing people whose opt-in and
	// later withdrawal are delivered in the reverse order.
	ReorderFrac float64
	// Gap is how many positions later a person's second event (and a
	// duplicate) is delivered (default 5).
	Gap int
}

// Stream returns the deliveries of m in sending order. The shares are
// exact (rounded): round(People × WithdrawFrac) people withdraw, of whom
// round(that × ReorderFrac) are delivered reversed, and round(deliveries ×
// DupFrac) deliveries are repeated; which ones is drawn from the seed.
func (w *Workload) Stream(m Mix) []Event {
	if m.Gap <= 0 {
		m.Gap = 5
	}
	type slot struct {
		pos float64
		e   Event
	}
	withdrawing := w.pick(m.People, m.WithdrawFrac)
	nw := 0
	for _, ok := range withdrawing {
		if ok {
			nw++
		}
	}
	reversed := w.pick(nw, m.ReorderFrac)
	var slots []slot
	k := 0
	for i := 0; i < m.People; i++ {
		email := w.NewEmail()
		in := w.Next(email, false)
		pos := float64(len(slots))
		if !withdrawing[i] {
			slots = append(slots, slot{pos, in})
			continue
		}
		out := w.Next(email, true)
		first, second := in, out
		if reversed[k] {
			first, second = out, in
		}
		k++
		slots = append(slots, slot{pos, first}, slot{pos + float64(m.Gap) + 0.5, second})
	}
	n := len(slots)
	for i, dup := range w.pick(n, m.DupFrac) {
		if dup {
			slots = append(slots, slot{slots[i].pos + float64(w.rng.IntN(2*m.Gap)+1) + 0.25, slots[i].e})
		}
	}
	sort.SliceStable(slots, func(i, j int) bool { return slots[i].pos < slots[j].pos })
	out := make([]Event, len(slots))
	for i, s := range slots {
		out[i] = s.e
	}
	return out
}

// pick marks exactly round(n × frac) of n positions, drawn at random.
func (w *Workload) pick(n int, frac float64) []bool {
	out := make([]bool, n)
	k := int(math.Round(float64(n) * frac))
	for _, i := range w.rng.Perm(n)[:min(k, n)] {
		out[i] = true
	}
	return out
}
