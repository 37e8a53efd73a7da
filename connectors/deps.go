package connectors

import (
	"log/slog"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Deps are what connectors may use besides their config. Constructors take
// them explicitly; there is no package-level state.
type Deps struct {
	// HTTP calls provider and sender APIs (see NewHTTPClient).
	HTTP *retryablehttp.Client
	// Logger never receives personal data or secrets.
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Clock returns d.Now or time.Now.
func (d Deps) Clock() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// HTTPClient returns d.HTTP, or a NewHTTPClient with timeout (0: its
// default) when d.HTTP is nil.
func (d Deps) HTTPClient(timeout time.Duration) *retryablehttp.Client {
	if d.HTTP != nil {
		return d.HTTP
	}
	return NewHTTPClient(HTTPOptions{Timeout: timeout})
}
