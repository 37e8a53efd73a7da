package consent

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func state(status Status, at time.Time) *State {
	return &State{Status: status, OccurredAt: at, Source: "crm"}
}

func TestReconcile(t *testing.T) {
	t1 := t0.Add(time.Second)
	paris := time.FixedZone("CET", 3600)
	const (
		applied   = "applied"
		stale     = "stale"
		invalid   = "invalid"
		unchanged = "unchanged"
	)
	for _, tc := range []struct {
		name                 string
		cur                  *State
		sig                  Signal
		apply, isStale, supp bool
		reason               string
	}{
		{"no state: grant", nil, grant(t0), true, false, false, applied},
		{"no state: withdrawal suppresses", nil, with(grant(t0), StatusWithdrawn), true, false, true, applied},
		{"no state: pending", nil, with(grant(t0), StatusPending), true, false, false, applied},

		{"newer grant over grant", state(StatusGranted, t0), grant(t1), true, false, false, applied},
		{"newer grant lifts withdrawal", state(StatusWithdrawn, t0), grant(t1), true, false, false, applied},
		{"newer withdrawal over grant suppresses", state(StatusGranted, t0), with(grant(t1), StatusWithdrawn), true, false, true, applied},
		{"newer withdrawal over pending suppresses", state(StatusPending, t0), with(grant(t1), StatusWithdrawn), true, false, true, applied},
		{"newer withdrawal over withdrawal: no new suppression", state(StatusWithdrawn, t0), with(grant(t1), StatusWithdrawn), true, false, false, applied},
		{"newer pending replaces a grant", state(StatusGranted, t0), with(grant(t1), StatusPending), true, false, false, applied},
		{"one nanosecond later is later", state(StatusWithdrawn, t0), grant(t0.Add(time.Nanosecond)), true, false, false, applied},

		{"older grant never lifts a newer withdrawal", state(StatusWithdrawn, t1), grant(t0), false, true, false, stale},
		{"older withdrawal never cancels a newer opt-in", state(StatusGranted, t1), with(grant(t0), StatusWithdrawn), false, true, false, stale},
		{"older grant", state(StatusGranted, t1), grant(t0), false, true, false, stale},
		{"older pending", state(StatusGranted, t1), with(grant(t0), StatusPending), false, true, false, stale},

		{"tie: withdrawal beats grant", state(StatusGranted, t0), with(grant(t0), StatusWithdrawn), true, false, true, applied},
		{"tie: withdrawal beats pending", state(StatusPending, t0), with(grant(t0), StatusWithdrawn), true, false, true, applied},
		{"tie: grant beats pending", state(StatusPending, t0), grant(t0), true, false, false, applied},
		{"tie: grant vs withdrawn is stale", state(StatusWithdrawn, t0), grant(t0), false, true, false, stale},
		{"tie: pending vs granted is stale", state(StatusGranted, t0), with(grant(t0), StatusPending), false, true, false, stale},
		{"tie in another zone is a tie", state(StatusWithdrawn, t0), grant(t0.In(paris)), false, true, false, stale},
		{"tie: withdrawal in another zone beats grant", state(StatusGranted, t0.In(paris)), with(grant(t0), StatusWithdrawn), true, false, true, applied},

		{"same fact again: grant", state(StatusGranted, t0), grant(t0), false, false, false, unchanged},
		{"same fact again: withdrawal", state(StatusWithdrawn, t0), with(grant(t0), StatusWithdrawn), false, false, false, unchanged},
		{"same fact from another source", state(StatusGranted, t0), func() Signal { s := grant(t0); s.Source = "other"; return s }(), false, false, false, unchanged},

		{"invalid grant, no state", nil, with(grant(t0), StatusGranted, "ambiguous checkbox"), false, false, false, invalid},
		{"invalid grant never applies, even newer", state(StatusWithdrawn, t0), with(grant(t1), StatusGranted, "pre-ticked"), false, false, false, invalid},
		{"invalid grant over an older grant", state(StatusGranted, t0), with(grant(t1), StatusGranted, "pre-ticked"), false, false, false, invalid},
		{"invalid older grant", state(StatusGranted, t1), with(grant(t0), StatusGranted, "pre-ticked"), false, true, false, invalid},
		{"invalid pending", nil, with(grant(t0), StatusPending, "no wording"), false, false, false, invalid},
		{"withdrawal with problems still applies", nil, with(grant(t0), StatusWithdrawn, "odd"), true, false, true, applied},
		{"withdrawal with problems over a grant", state(StatusGranted, t0), with(grant(t1), StatusWithdrawn, "odd"), true, false, true, applied},
		{"older withdrawal with problems is stale", state(StatusGranted, t1), with(grant(t0), StatusWithdrawn, "odd"), false, true, false, stale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Reconcile(tc.cur, tc.sig)
			want := Outcome{Apply: tc.apply, Stale: tc.isStale, Suppress: tc.supp, Reason: tc.reason}
			if got != want {
				t.Errorf("Reconcile = %+v, want %+v", got, want)
			}
		})
	}
}

func TestSupersedes(t *testing.T) {
	t1 := t0.Add(time.Microsecond)
	statuses := []Status{StatusPending, StatusGranted, StatusWithdrawn}
	for _, a := range statuses {
		for _, b := range statuses {
			// Later always wins, whatever the statuses.
			if !Supersedes(t1, a, t0, b) || Supersedes(t0, a, t1, b) {
				t.Errorf("%s@t1 vs %s@t0: time does not decide", a, b)
			}
			// At a tie, rank decides: strict, so exactly one of two distinct
			// statuses wins and no status beats itself.
			ab, ba := Supersedes(t0, a, t0, b), Supersedes(t0, b, t0, a)
			if a == b && (ab || ba) || a != b && ab == ba {
				t.Errorf("tie %s vs %s: %v, %v", a, b, ab, ba)
			}
		}
	}
	if !Supersedes(t0, StatusWithdrawn, t0, StatusGranted) || !Supersedes(t0, StatusGranted, t0, StatusPending) {
		t.Error("rank is not withdrawn > granted > pending")
	}
}

// fold delivers signals in order and returns the final state.
func fold(signals []Signal) *State {
	var cur *State
	for _, s := range signals {
		if out := Reconcile(cur, s); out.Apply {
			cur = &State{Status: s.Status, OccurredAt: s.OccurredAt, Source: s.Source}
		}
	}
	return cur
}

// maxValid is the maximum of the valid signals under Supersedes (nil when
// none is valid).
func maxValid(signals []Signal) *Signal {
	var m *Signal
	for i := range signals {
		s := &signals[i]
		if s.Valid() && (m == nil || Supersedes(s.OccurredAt, s.Status, m.OccurredAt, m.Status)) {
			m = s
		}
	}
	return m
}

func sameState(a *State, b *Signal) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Status == b.Status && a.OccurredAt.Equal(b.OccurredAt)
}

func describe(s *State) string {
	if s == nil {
		return "no state"
	}
	return fmt.Sprintf("%s@%s", s.Status, s.OccurredAt.Format(time.RFC3339Nano))
}

// randomSignals draws n signals over few instants (so ties are common), all
// statuses, some invalid, several sources.
func randomSignals(r *rand.Rand, n int) []Signal {
	instants := []time.Time{t0, t0.Add(time.Microsecond), t0.Add(time.Hour), t0.In(time.FixedZone("X", -5*3600))}
	statuses := []Status{StatusGranted, StatusWithdrawn, StatusPending}
	out := make([]Signal, n)
	for i := range out {
		s := grant(instants[r.IntN(len(instants))])
		s.Status = statuses[r.IntN(len(statuses))]
		s.Source = fmt.Sprintf("src%d", r.IntN(3))
		if r.IntN(4) == 0 {
			s.Problems = []string{"ambiguous"}
		}
		out[i] = s
	}
	return out
}

// TestReconcileOrderIndependent: whatever order a set of signals is
// delivered in, the state reached is the same, and it is the maximum of the
// valid signals under Supersedes (docs/design.md §1: order by occurrence, not
// arrival). Replaying any signal afterwards changes nothing.
func TestReconcileOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(20250314, 1))
	for iter := range 5000 {
		signals := randomSignals(r, 1+r.IntN(8))
		want := maxValid(signals)
		perms := [][]Signal{signals, slices.Clone(signals)}
		slices.Reverse(perms[1])
		for range 8 {
			p := slices.Clone(signals)
			r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
			perms = append(perms, p)
		}
		for _, p := range perms {
			got := fold(p)
			if !sameState(got, want) {
				t.Fatalf("iteration %d: order %v gives %s, want the max %v", iter, p, describe(got), want)
			}
			for _, s := range signals {
				if out := Reconcile(got, s); out.Apply || out.Suppress {
					t.Fatalf("iteration %d: replaying %s@%v over the final state %s: %+v", iter, s.Status, s.OccurredAt, describe(got), out)
				}
			}
		}
	}
}

// TestReconcileOutcomeInvariants: Suppress only with Apply and a move into
// withdrawn; Stale never with Apply.
func TestReconcileOutcomeInvariants(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for range 20000 {
		ss := randomSignals(r, 2)
		var cur *State
		if r.IntN(5) > 0 {
			cur = &State{Status: ss[0].Status, OccurredAt: ss[0].OccurredAt, Source: ss[0].Source}
		}
		sig := ss[1]
		out := Reconcile(cur, sig)
		if out.Apply && out.Stale {
			t.Fatalf("%s over %s: apply and stale", sig.Status, describe(cur))
		}
		wantSuppress := out.Apply && sig.Status == StatusWithdrawn && (cur == nil || cur.Status != StatusWithdrawn)
		if out.Suppress != wantSuppress {
			t.Fatalf("%s over %s: suppress = %v", sig.Status, describe(cur), out.Suppress)
		}
		if !sig.Valid() && out.Apply {
			t.Fatalf("invalid %s applied over %s", sig.Status, describe(cur))
		}
		if sig.Status == StatusWithdrawn && (cur == nil || Supersedes(sig.OccurredAt, sig.Status, cur.OccurredAt, cur.Status)) && !out.Apply {
			t.Fatalf("winning withdrawal not applied over %s: %+v", describe(cur), out)
		}
		if out.Reason == "" {
			t.Fatal("no reason")
		}
	}
}

// Two sources reporting the same status at the same instant tie exactly:
// which source the state names is the first delivered. The status and time
// do not depend on order (the property test above), the source does.
func TestReconcileFullTieKeepsFirstSource(t *testing.T) {
	a, b := with(grant(t0), StatusWithdrawn), with(grant(t0), StatusWithdrawn)
	a.Source, b.Source = "hubspot", "mailchimp"
	if got := fold([]Signal{a, b}); got.Source != "hubspot" {
		t.Errorf("source = %q", got.Source)
	}
	if got := fold([]Signal{b, a}); got.Source != "mailchimp" {
		t.Errorf("source = %q", got.Source)
	}
}

func FuzzReconcileOrder(f *testing.F) {
	f.Add(int64(0), uint8(0), false, int64(0), uint8(1), false)
	f.Add(int64(5), uint8(1), false, int64(5), uint8(0), true)
	f.Add(int64(-1), uint8(2), true, int64(1), uint8(1), true)
	f.Add(int64(1000), uint8(0), true, int64(999), uint8(2), false)
	f.Fuzz(func(t *testing.T, ta int64, sa uint8, pa bool, tb int64, sb uint8, pb bool) {
		mk := func(at int64, st uint8, problems bool) Signal {
			s := grant(t0.Add(time.Duration(at)))
			s.Status = []Status{StatusGranted, StatusWithdrawn, StatusPending, "bogus"}[st%4]
			if problems {
				s.Problems = []string{"p"}
			}
			return s
		}
		a, b := mk(ta, sa, pa), mk(tb, sb, pb)
		ab, ba := fold([]Signal{a, b}), fold([]Signal{b, a})
		if (ab == nil) != (ba == nil) || ab != nil && (ab.Status != ba.Status || !ab.OccurredAt.Equal(ba.OccurredAt)) {
			t.Fatalf("a then b: %s; b then a: %s", describe(ab), describe(ba))
		}
		if want := maxValid([]Signal{a, b}); !sameState(ab, want) {
			t.Fatalf("got %s, want the max %v", describe(ab), want)
		}
		// From any prior state, the two orders agree too.
		for _, st := range []Status{StatusGranted, StatusWithdrawn, StatusPending} {
			prior := grant(t0)
			prior.Status = st
			x, y := fold([]Signal{prior, a, b}), fold([]Signal{prior, b, a})
			if x.Status != y.Status || !x.OccurredAt.Equal(y.OccurredAt) {
				t.Fatalf("from %s: %s vs %s", st, describe(x), describe(y))
			}
		}
	})
}
