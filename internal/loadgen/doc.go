// Package loadgen builds webhook requests signed the way real senders sign
// them for consentsync's sources, and drives them at a rate, recording
// each request's acknowledgement latency and status. It is the load side of
// `make bench` (cmd/consentsync-bench) and of the fault tests.
//
// API (stable: fault tests import it):
//
//	f := loadgen.Form{URL: base + "/webhooks/bench-form", Secret: s, Header: "X-Signature"}
//	req, err := f.Request(email, optIn, at)     // one JSON submission, HMAC-signed
//	req, err := f.BulkRequest([]loadgen.FormEvent{{Email, OptIn, At}, ...}) // a JSON array
//	body := f.Body(email, optIn, at); name, value := f.Sign(body)
//	f.EventID(email, optIn, at)                  // the submission's event id (deterministic)
//
//	key, pub, err := loadgen.NewSendGridKey()    // pub: the source's secret (base64 PKIX DER)
//	s := loadgen.SendGridEvents{URL: base + "/webhooks/bench-sendgrid", Key: key}
//	req, err := s.Request([]loadgen.SendGridEvent{{Email, Event: "unsubscribe", At}}, time.Now())
//
//	st := loadgen.Run(ctx, rate, duration, concurrency, func(i int) *http.Request { ... })
//	st := loadgen.RunClosed(ctx, duration, concurrency, gen) // back to back: the max rate
//	st.OK(), st.Rate(), st.Status[202], st.Errors, st.Skipped
//	st.AckPercentile(0.99)       // send → answer, answered requests
//	st.IntendedPercentile(0.99)  // scheduled → answer (no coordinated omission)
//	st.Samples[k]                // {I, Scheduled, Start, End, Status}: per request i
//
// Form submissions carry, by default (FormFields, overridable): "email",
// "submitted_at" (RFC 3339, ms), "newsletter" ("on" for an opt-in, "off" —
// explicitly unticked — otherwise: a withdrawal on a source whose consents
// mapping says withdrawal: true), "event_id" (a hash of email, opt-in and
// time: the same triple is the same event, so it doubles as a duplicate
// delivery), plus Form.Extra's constant fields. The signature is
// Prefix + hex|base64 HMAC-SHA256|SHA512(Secret, raw body) in Header, or
// "Authorization: Bearer Secret" when Header is empty
// (connectors/form).
//
// SendGrid Event Webhook requests are a JSON array signed with ECDSA P-256
// (X-Twilio-Email-Event-Webhook-Signature over SHA-256(timestamp + body),
// X-Twilio-Email-Event-Webhook-Timestamp in Unix seconds), through
// connectors/sendgrid.Sign.
//
// Run is open loop: request i is scheduled at start + i/rate whatever the
// answers, sent by one of concurrency workers; when all are busy it waits
// and the delay shows in IntendedPercentile. Requests still unsent 5 s
// after duration are dropped (Skipped). A generator returning nil ends the
// run early; gen is never called concurrently. Neither Run nor RunClosed
// follows redirects or logs bodies.
package loadgen
