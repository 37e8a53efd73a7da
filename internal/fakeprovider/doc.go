// Package fakeprovider is an in-process fake of the email providers
// consentsync pushes suppressions to (SendGrid global/group suppressions,
// Mailchimp batch member updates), for benchmarks and fault tests. It
// follows each provider's documented contract as consentsync's connectors
// call it (docs/wire-formats.md): paths, auth (401 with the provider's
// error body on a wrong key), body shape, batch limits (400 with the
// provider's error body), 429 with the provider's rate headers. Unlike
// internal/sandbox it keeps a per-address receive log with timestamps and
// has fault modes that can change at any time.
//
// API (stable: fault tests import it):
//
//	p := fakeprovider.NewSendGrid(apiKey)           // serving on 127.0.0.1:<free port>
//	p := fakeprovider.NewMailchimp(apiKey, listID)
//	p, err := fakeprovider.Listen(addr, fakeprovider.Options{Kind: fakeprovider.SendGrid, APIKey: k})
//	defer p.Close()
//	p.URL              // "http://127.0.0.1:PORT": a destination's base_url
//	p.Handler()        // the same fake as an http.Handler, to mount elsewhere
//
//	p.Calls()          // int: API requests received (any answer, 401s included)
//	p.Accepted()       // int: API requests answered 2xx
//	p.CallLog()        // []Call: method, path, status, addresses, arrival, answer time
//	p.Received()       // map[address][]time.Time: arrival time of every accepted push
//	                   //   of the address, as spelled in the request (a double has 2 entries)
//	p.Addresses()      // sorted distinct addresses accepted at least once
//	p.Reset()          // forget calls and receive log
//
//	p.SetFault(fakeprovider.Fault{Kind: fakeprovider.Hang})
//	p.SetFault(fakeprovider.Fault{Kind: fakeprovider.TooMany, Reset: 5 * time.Second})
//	p.SetFault(fakeprovider.Fault{Kind: fakeprovider.Unavailable, RetryAfter: time.Second})
//	p.SetFault(fakeprovider.Fault{Kind: fakeprovider.Slow, Delay: 300 * time.Millisecond})
//	p.SetFault(fakeprovider.Fault{})                // back to Normal
//	p.Storm(fakeprovider.Phase{Fault: fakeprovider.Fault{Kind: fakeprovider.TooMany, Reset: time.Second}, For: 60 * time.Second},
//	        fakeprovider.Phase{Fault: fakeprovider.Fault{Kind: fakeprovider.Unavailable}, For: 30 * time.Second})
//	p.Fault()          // the fault in force now
//	p.SetMaxConcurrent(n) // in-flight requests beyond n get 429 (Mailchimp default 10, its documented limit; 0 = none)
//
// Fault semantics, for every API path, after the auth check (a bad key
// always gets 401):
//   - Normal: the provider's success answer; addresses are logged.
//   - Hang: the request blocks, answering nothing, until the client gives
//     up (nothing applied), the fault changes (then it is answered under the
//     new fault) or the Provider is closed.
//   - TooMany: 429 with the provider's error body. SendGrid adds
//     X-RateLimit-Limit, X-RateLimit-Remaining: 0 and X-RateLimit-Reset
//     (epoch seconds, arrival + Reset rounded up); Mailchimp documents no
//     rate headers, so none. Retry-After (whole seconds) is added for either
//     when Fault.RetryAfter > 0.
//   - Unavailable: 503 with the provider's error body (Retry-After when
//     Fault.RetryAfter > 0).
//   - Slow: answered normally after Fault.Delay; the push is applied and
//     logged at the end of the delay even if the client gave up meanwhile
//     (a timed-out call may have been applied: consentsync must tolerate
//     the double).
//
// Storm runs phases back to back from the moment it is called, then returns
// to Normal; SetFault cancels a storm in progress.
//
// A Provider started by Listen also serves a control API, for a fake in
// another process: GET /_fake/stats ({"calls", "accepted", "addresses",
// "received"}: counts), GET /_fake/received (the receive log as JSON,
// RFC 3339 nano times), PUT /_fake/fault (a Fault as JSON: {"kind":
// "hang"|"too_many"|"unavailable"|"slow"|"normal", "reset_ms",
// "retry_after_ms", "delay_ms"}). It is not counted in Calls.
//
// Addresses are personal data: nothing here logs them; they are only
// returned to the caller.
package fakeprovider
