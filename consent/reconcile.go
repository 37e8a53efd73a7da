package consent

import "time"

// State is the current consent of one subject for one (channel, brand,
// purpose): the status of the signal that won, when it occurred and where it
// came from.
type State struct {
	Status     Status    `json:"status"`
	OccurredAt time.Time `json:"occurred_at"`
	Source     string    `json:"source"`
}

// Outcome is what reconciling one signal against the current state does.
type Outcome struct {
	// Apply: the signal becomes the current state.
	Apply bool
	// Stale: the signal lost to a state that occurred later (or won a tie); it
	// is kept in the ledger, marked stale, and changes nothing.
	Stale bool
	// Suppress: the state moves to withdrawn, so every destination that
	// could still send to the subject must be told.
	Suppress bool
	// Reason says why, for the ledger: "applied", "stale", "invalid",
	// "unchanged".
	Reason string
}

// statusRank breaks ties between signals that occurred at the same instant:
// withdrawal wins, then a grant, then a pending request. Withdrawal winning a
// tie is the fail-closed choice required by GDPR art. 7(3): when we cannot
// tell which came last, we do not mail.
func statusRank(s Status) int {
	switch s {
	case StatusWithdrawn:
		return 3
	case StatusGranted:
		return 2
	case StatusPending:
		return 1
	}
	return 0
}

// Supersedes reports whether a signal with status s at time t replaces a state
// with status cs at time ct: it occurred strictly later, or at the same
// instant with a higher-ranked status (withdrawn > granted > pending).
//
// This is a strict total order on (time, status), so the state reached from a
// set of valid signals is their maximum whatever order they are delivered in
// (order by occurrence, not arrival: docs/design.md §1).
func Supersedes(t time.Time, s Status, ct time.Time, cs Status) bool {
	if !t.Equal(ct) {
		return t.After(ct)
	}
	return statusRank(s) > statusRank(cs)
}

// Reconcile decides what sig does to cur (nil when the subject has no state
// for the signal's channel, brand and purpose).
//
// Rules, in order:
//   - an invalid grant (sig.Valid() false) is recorded and applies nothing;
//   - a signal that does not supersede the state is stale and applies nothing
//     (an older grant never lifts a newer withdrawal, an older withdrawal never
//     cancels a newer valid opt-in);
//   - otherwise it applies; a move into withdrawn from anything else
//     (including no state at all) asks for suppression everywhere.
//
// Pending applies like any status but grants nothing: eligibility reads it as
// "pending confirmation".
func Reconcile(cur *State, sig Signal) Outcome {
	stale := cur != nil && !Supersedes(sig.OccurredAt, sig.Status, cur.OccurredAt, cur.Status)
	if !sig.Valid() {
		return Outcome{Stale: stale, Reason: "invalid"}
	}
	if stale {
		if cur.Status == sig.Status && cur.OccurredAt.Equal(sig.OccurredAt) {
			return Outcome{Reason: "unchanged"}
		}
		return Outcome{Stale: true, Reason: "stale"}
	}
	suppress := sig.Status == StatusWithdrawn && (cur == nil || cur.Status != StatusWithdrawn)
	return Outcome{Apply: true, Suppress: suppress, Reason: "applied"}
}
