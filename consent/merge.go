package consent

import (
	"strings"
	"time"
)

// MergeFacts combines the facts of one person seen through several
// subjects — literal addresses, the aliases of one mailbox (MailboxKey:
// j.doe@gmail.com and jdoe+news@gmail.com), the numbers linked with an
// address — so that a question about any member gets the same answer:
//
//   - Known if any member is known; Professional if any member is;
//   - Email is primary's, else the first non-empty one of others (the only
//     field that depends on the order);
//   - Erased only if every known member is erased, ErasedAt the latest of
//     their erasures (a member erased alone is forgotten, not the person);
//   - States, per key, the superseding one (Supersedes: the later
//     occurrence wins, a withdrawal wins a tie; between two states of the
//     same instant and status, the one whose quality blocks more, so the
//     result does not depend on the order);
//   - Withdrawals, per key, the latest withdrawal of any member, counting
//     the members' withdrawn states: a withdrawal by one member is a
//     withdrawal by all, and only a grant that lifts it (LiftsWithdrawal)
//     makes the merged state count again;
//   - InvalidGrants and InvalidDetails, per key, the latest refused grant,
//     kept only when newer than the merged state (or when there is none);
//   - CustomerOf, per brand, the earliest non-zero customer date;
//     LastContact and RelationshipEnd, per brand, the latest.
//
// Apart from Email, the result is the same whatever the order of the
// members. The inputs are not modified and the result shares no map with
// them. Source: GDPR art. 7(3) and 21(3) (the objection of the person,
// whichever identifier it came through); docs/rules.md ("Withdrawal").
func MergeFacts(primary Facts, others ...Facts) Facts {
	all := append([]Facts{primary}, others...)
	var out Facts
	out.Email = primary.Email
	known, erased := 0, 0
	for _, f := range all {
		if out.Email == "" {
			out.Email = f.Email
		}
		out.Professional = out.Professional || f.Professional
		if f.Known {
			out.Known = true
			known++
			if f.Erased {
				erased++
				if f.ErasedAt.After(out.ErasedAt) {
					out.ErasedAt = f.ErasedAt
				}
			}
		}
		for k, st := range f.States {
			if cur, ok := out.States[k]; !ok || stateWins(st, cur) {
				out.States = put(out.States, k, st)
			}
			if st.Status == StatusWithdrawn {
				out.Withdrawals = putLatest(out.Withdrawals, k, st.OccurredAt)
			}
		}
		for k, w := range f.Withdrawals {
			out.Withdrawals = putLatest(out.Withdrawals, k, w)
		}
		for k, t := range f.InvalidGrants {
			cur, ok := out.InvalidGrants[k]
			d := f.InvalidDetails[k]
			if !ok || t.After(cur) || t.Equal(cur) && d > out.InvalidDetails[k] {
				out.InvalidGrants = put(out.InvalidGrants, k, t)
				if d != "" {
					out.InvalidDetails = put(out.InvalidDetails, k, d)
				} else {
					delete(out.InvalidDetails, k)
				}
			}
		}
		for b, t := range f.CustomerOf {
			if cur, ok := out.CustomerOf[b]; !ok || cur.IsZero() || !t.IsZero() && t.Before(cur) {
				out.CustomerOf = put(out.CustomerOf, b, t)
			}
		}
		for b, t := range f.LastContact {
			out.LastContact = putLatest(out.LastContact, b, t)
		}
		for b, t := range f.RelationshipEnd {
			out.RelationshipEnd = putLatest(out.RelationshipEnd, b, t)
		}
	}
	if known > 0 && erased == known {
		out.Erased = true
	} else {
		out.ErasedAt = time.Time{}
	}
	for k, t := range out.InvalidGrants {
		if st, ok := out.States[k]; ok && !t.After(st.OccurredAt) {
			delete(out.InvalidGrants, k)
			delete(out.InvalidDetails, k)
		}
	}
	if len(out.InvalidGrants) == 0 {
		out.InvalidGrants, out.InvalidDetails = nil, nil
	}
	if len(out.InvalidDetails) == 0 {
		out.InvalidDetails = nil
	}
	return out
}

// stateWins reports whether state a replaces state b in MergeFacts: it
// supersedes b, or ties with it (same instant and status) and its quality
// blocks more (fail-closed), or, blocking as much, sorts after it.
func stateWins(a, b StateFact) bool {
	if Supersedes(a.OccurredAt, a.Status, b.OccurredAt, b.Status) {
		return true
	}
	if Supersedes(b.OccurredAt, b.Status, a.OccurredAt, a.Status) {
		return false
	}
	if x, y := len(a.Quality.Blocking(false)), len(b.Quality.Blocking(false)); x != y {
		return x > y
	}
	if x, y := len(a.Quality.Blocking(true)), len(b.Quality.Blocking(true)); x != y {
		return x > y
	}
	return qualityText(a.Quality) > qualityText(b.Quality)
}

// qualityText renders every assessment of q, for ordering ties.
func qualityText(q Quality) string {
	var b strings.Builder
	for _, a := range q {
		b.WriteString(string(a.Criterion))
		b.WriteByte(0)
		b.WriteString(string(a.Verdict))
		b.WriteByte(0)
		b.WriteString(a.Reason)
		b.WriteByte(1)
	}
	return b.String()
}

func put[K comparable, V any](m map[K]V, k K, v V) map[K]V {
	if m == nil {
		m = map[K]V{}
	}
	m[k] = v
	return m
}

func putLatest[K comparable](m map[K]time.Time, k K, t time.Time) map[K]time.Time {
	if cur, ok := m[k]; ok && !t.After(cur) {
		return m
	}
	return put(m, k, t)
}
