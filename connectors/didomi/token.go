package didomi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/consentsync/consentsync/connectors"
)

// TokenLifetime is how long an access token IssueToken mints stays valid
// (its expires_in, in seconds, is 3600).
const TokenLifetime = time.Hour

// tokenPrefix starts every access token (a version, so the format can
// change without accepting old tokens by accident).
const tokenPrefix = "cs1."

// Token returns an access token for the source named source and client
// clientID, valid until exp (Unix seconds): "cs1.<exp>.<base64url
// HMAC-SHA256(secret, "consentsync-didomi:" source ":" clientID ":" exp)>".
// It is stateless: Verify recomputes it. For IssueToken, tests and the demo.
func Token(secret, source, clientID string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return tokenPrefix + e + "." + base64.RawURLEncoding.EncodeToString(tokenMAC(secret, source, clientID, e))
}

func tokenMAC(secret, source, clientID, exp string) []byte {
	return connectors.HMAC("sha256", []byte(secret), []byte("consentsync-didomi:"+source+":"+clientID+":"+exp))
}

// checkToken verifies a bearer token against every secret: well formed,
// its MAC matching, not expired at now and not valid for longer than
// TokenLifetime (plus tolerance, for clock skew) from now.
func (s *Source) checkToken(tok string, now time.Time) error {
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok {
		return connectors.Unauthorized("bearer token is not one this source issued")
	}
	e, mac, ok := strings.Cut(rest, ".")
	if !ok || e == "" || len(e) > 12 {
		return connectors.Unauthorized("bearer token is malformed")
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil || exp <= 0 {
		return connectors.Unauthorized("bearer token is malformed")
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil {
		return connectors.Unauthorized("bearer token is malformed")
	}
	ok = connectors.AnySecret(s.secrets, func(sec string) bool {
		return connectors.EqualBase64(base64.StdEncoding.EncodeToString(got), tokenMAC(sec, s.cfg.Name, s.clientID, e))
	})
	if !ok {
		return connectors.Unauthorized("bearer token does not match")
	}
	t := time.Unix(exp, 0)
	if !now.Before(t) {
		return fmt.Errorf("%w: %w: bearer token expired", connectors.ErrUnauthorized, connectors.ErrStale)
	}
	if t.Sub(now) > TokenLifetime+s.tolerance {
		return connectors.Unauthorized("bearer token valid for longer than issued")
	}
	return nil
}

// IssueToken is the OAuth 2.0 token endpoint Didomi's webhook integration
// calls before each batch of deliveries (RFC 6749 §4.4, client
// credentials; https://developers.didomi.io/integrations/generic-integrations/webhooks,
// "Authentication"): POST /webhooks/<name>/oauth/token, form-encoded
// grant_type=client_credentials, the client authenticated by HTTP basic
// auth (client_id:client_secret) or by client_id and client_secret
// parameters (§2.3.1). The client id must be the client_id option and the
// client secret one of the source's secrets. It answers 200
// {"access_token", "token_type": "Bearer", "expires_in": 3600} with
// Cache-Control: no-store (§5.1); 400 {"error": "invalid_request" |
// "unsupported_grant_type"}; 401 {"error": "invalid_client"} (§5.2).
func (s *Source) IssueToken(w http.ResponseWriter, r *connectors.Request, now time.Time) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	fail := func(status int, code, desc string) {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="consentsync"`)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != "" && r.Method != http.MethodPost {
		fail(http.StatusBadRequest, "invalid_request", "POST only")
		return
	}
	form, err := url.ParseQuery(string(r.Body))
	if err != nil {
		fail(http.StatusBadRequest, "invalid_request", "body is not form-encoded")
		return
	}
	if g := form.Get("grant_type"); g != "client_credentials" {
		fail(http.StatusBadRequest, "unsupported_grant_type", "want grant_type=client_credentials")
		return
	}
	id, sec, basic := (&http.Request{Header: r.Header}).BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: basic auth credentials are form-urlencoded first.
		if u, err := url.QueryUnescape(id); err == nil {
			id = u
		}
		if p, err := url.QueryUnescape(sec); err == nil {
			sec = p
		}
	} else {
		id, sec = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" || sec == "" {
		fail(http.StatusUnauthorized, "invalid_client", "client authentication required")
		return
	}
	idOK := connectors.EqualToken(id, s.clientID)
	var secret string
	for _, candidate := range s.secrets {
		if connectors.EqualToken(sec, candidate) && secret == "" {
			secret = candidate
		}
	}
	if !idOK || secret == "" {
		fail(http.StatusUnauthorized, "invalid_client", "unknown client or bad secret")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": Token(secret, s.cfg.Name, s.clientID, now.Add(TokenLifetime)),
		"token_type":   "Bearer",
		"expires_in":   int(TokenLifetime / time.Second),
	})
}
