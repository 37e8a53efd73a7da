package connectors

import (
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/consent"
)

// EmailWithdrawal is what a provider-level unsubscribe or complaint means
// (docs/wire-formats.md, "Scope"): the withdrawal, at at, of src's brand's
// marketing on email, for email as sent, from source src.Name, with ev.
func EmailWithdrawal(src config.Source, email string, at time.Time, ev consent.Evidence) consent.Signal {
	return consent.Signal{
		Subject:    consent.Subject{Email: email},
		Channel:    consent.ChannelEmail,
		Brand:      src.Brand,
		Purpose:    consent.PurposeMarketing,
		Status:     consent.StatusWithdrawn,
		OccurredAt: at,
		Source:     src.Name,
		Evidence:   ev,
	}
}

// EmailActivity is a contact of the given kind (a delivery, an open, a
// click, an order) with email as sent, on email, for src's brand, at at,
// from source src.Name.
func EmailActivity(src config.Source, email string, kind consent.ActivityKind, at time.Time) consent.Activity {
	return consent.Activity{
		Subject:    consent.Subject{Email: email},
		Brand:      src.Brand,
		Channel:    consent.ChannelEmail,
		Kind:       kind,
		OccurredAt: at,
		Source:     src.Name,
	}
}
