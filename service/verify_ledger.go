package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/consentsync/consentsync/store"
)

// LedgerReport is what VerifyLedger found.
type LedgerReport struct {
	Rows   int
	Root   []byte
	Breaks []store.Break
}

// VerifyLedger recomputes every subject's hash chain, evidence and
// raw-request hashes and every current state from the ledger
// (store.Store.VerifyLedger), calling report for each break as it is found
// (nil: none). expect, when not empty, is a ledger root printed by an
// earlier run (64 hex digits): the result's error says when the root
// changed. The error is non-nil when there is a break.
func (s *Service) VerifyLedger(ctx context.Context, expect string, report func(store.Break)) (LedgerReport, error) {
	if expect != "" {
		if b, err := hex.DecodeString(expect); err != nil || len(b) != sha256.Size {
			return LedgerReport{}, fmt.Errorf("expected root %q: a ledger root is 64 hex digits, as printed by verify-ledger", expect)
		}
	}
	var r LedgerReport
	n, root, err := s.Store.VerifyLedger(ctx, func(b store.Break) {
		r.Breaks = append(r.Breaks, b)
		if report != nil {
			report(b)
		}
	})
	r.Rows, r.Root = n, root
	if err != nil {
		return r, err
	}
	if len(r.Breaks) > 0 {
		return r, fmt.Errorf("%d break(s) in %d ledger rows", len(r.Breaks), n)
	}
	if expect != "" && expect != hex.EncodeToString(root) {
		return r, fmt.Errorf("ledger root changed since %s: rows were appended, removed or rewritten", expect)
	}
	return r, nil
}
