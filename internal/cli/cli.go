// Package cli renders the service layer's answers for the consentsync
// command line (support staff, operators). It computes nothing: every line
// comes from a use case of package service, so the CLI and the admin API
// answer the same.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/consentsync/consentsync/service"
	"github.com/consentsync/consentsync/worker"
)

// PrintSubject prints, for support staff, the person raw names: identities,
// consents, eligibility per brand × channel × purpose, history and
// suppressions — all from the service layer (service.Subject,
// service.History), the same answers as the admin API.
func PrintSubject(ctx context.Context, w io.Writer, svc *service.Service, raw string) error {
	v, err := svc.Subject(ctx, raw)
	if errors.Is(err, service.ErrErased) {
		fmt.Fprintf(w, "%s was erased on %s: nothing may be sent to it.\n", raw, v.ErasedAt.UTC().Format(time.RFC3339))
		return nil
	}
	if errors.Is(err, service.ErrUnknownSubject) {
		return fmt.Errorf("%s: unknown subject", raw)
	}
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "subject %s%s  profile: %s\n", v.Subject.Email, v.Subject.Phone, v.Subject.Profile)
	fmt.Fprintln(w, "identities (one person):")
	for _, id := range v.Identities {
		fmt.Fprintf(w, "  %s%s\n", id.Email, id.Phone)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "CONSENT\tSTATUS\tSINCE (UTC)\tSOURCE\tVALID")
	for _, c := range v.Consents {
		fmt.Fprintf(tw, "%s/%s/%s\t%s\t%s\t%s\t%v\n", c.Brand, c.Channel, c.Purpose, c.Status, c.OccurredAt.UTC().Format("2006-01-02 15:04:05"), c.Source, c.Valid)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nMAY WE SEND?")
	fmt.Fprintln(tw, "BRAND\tCHANNEL\tPURPOSE\tALLOWED\tBASIS\tREASON\tSINCE\tEXPIRES")
	for _, a := range v.Eligibility {
		reason := a.Reason
		if a.Quality != "" {
			// An imported grant without proof (consent.Answer.Quality).
			reason += " (quality " + string(a.Quality) + ": imported without proof)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\n", a.Brand, a.Channel, a.Purpose, a.Allowed, a.Basis, reason, day(a.Since), day(a.ExpiresAt))
	}
	_ = tw.Flush()
	h, err := svc.History(ctx, raw)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\nHISTORY (ledger, oldest first)")
	fmt.Fprintln(tw, "#\tOCCURRED (UTC)\tCONSENT\tSTATUS\tSOURCE\tOUTCOME\tVALID\tINBOUND")
	for _, r := range h.Events {
		inbound := int64(0)
		if r.InboundID != nil {
			inbound = *r.InboundID
		}
		fmt.Fprintf(tw, "%d\t%s\t%s/%s/%s\t%s\t%s\t%s\t%v\t%d\n", r.ID, r.OccurredAt.UTC().Format("2006-01-02 15:04:05"),
			r.Brand, r.Channel, r.Purpose, r.Status, r.Source, r.Outcome, r.Valid, inbound)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nSUPPRESSIONS")
	fmt.Fprintln(tw, "DESTINATION\tADDRESS\tCONSENT\tACTION\tSTATUS\tATTEMPTS\tSENT (UTC)\tVERIFIED (UTC)\tMISMATCHES\tANSWER")
	for _, r := range v.Suppressions {
		sent, verified, answer, addr := "", "", "", ""
		if r.SentAt != nil {
			sent = r.SentAt.UTC().Format("2006-01-02 15:04:05")
		}
		if r.VerifiedAt != nil {
			verified = r.VerifiedAt.UTC().Format("2006-01-02 15:04:05")
		}
		if r.Receipt != nil {
			answer = *r.Receipt
		}
		if r.LastError != nil && r.Status != "sent" {
			answer = *r.LastError
		}
		if len(answer) > 70 {
			answer = answer[:67] + "..."
		}
		if r.Email != nil {
			addr = *r.Email
		} else if r.Phone != nil {
			addr = *r.Phone
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%s/%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", r.Destination, addr, r.Brand, r.Channel, r.Purpose, r.Action, r.Status, r.Attempts, sent, verified, r.Mismatches, answer)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(v.Notices) > 0 {
		fmt.Fprintln(w, "\nNOTICES (tell the person)")
		for _, n := range v.Notices {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	return nil
}

// day formats an optional time as a date.
func day(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format("2006-01-02")
}

// PrintExpiring prints service.Expiring's entries, one line per person and
// permission.
func PrintExpiring(w io.Writer, rows []service.ExpiringEntry, within string, ttl time.Duration) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBJECT\tCONSENT\tRULE\tSINCE (UTC)\tEXPIRES (UTC)\tSTATE")
	for _, r := range rows {
		names := make([]string, len(r.Identities))
		for i, id := range r.Identities {
			names[i] = id.Email + id.Phone
		}
		state := "expiring"
		if r.Expired {
			state = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s/%s/%s\t%s\t%s\t%s\t%s\n", strings.Join(names, ","), r.Key.Brand, r.Key.Channel, r.Key.Purpose, r.Rule,
			r.Since.UTC().Format("2006-01-02"), r.ExpiresAt.UTC().Format("2006-01-02"), state)
	}
	_ = tw.Flush()
	_, err := fmt.Fprintf(w, "%d permission(s) lapse within %s (policy.consent_ttl %s)\n", len(rows), within, ttl)
	return err
}

// PrintCatchUp renders what a destination catch-up did (worker.CatchUp):
// per destination, the subjects read and the suppressions queued (or, with
// dryRun, that would be queued).
func PrintCatchUp(w io.Writer, reports []worker.CatchUpReport, dryRun bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	verb := "QUEUED"
	if dryRun {
		verb = "WOULD QUEUE"
	}
	fmt.Fprintf(tw, "DESTINATION\tSUBJECTS READ\t%s\n", verb)
	var total int64
	for _, r := range reports {
		note := ""
		if r.Incremental {
			note = "\t(only who withdrew since the last run)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d%s\n", r.Destination, r.Subjects, r.Queued, note)
		total += r.Queued
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if dryRun {
		_, err := fmt.Fprintf(w, "dry run: %d suppression(s) would be queued; nothing was written\n", total)
		return err
	}
	if total == 0 {
		_, err := fmt.Fprintln(w, "nothing to queue: every destination holds every standing withdrawal it covers")
		return err
	}
	_, err := fmt.Fprintf(w, "%d suppression(s) queued; their pushes are enqueued\n", total)
	return err
}
