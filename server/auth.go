package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Role is what the credential of an ops request allows.
type Role int

// Roles, from least to most.
const (
	// RoleNone: no credential, or one that matches no token.
	RoleNone Role = iota
	// RoleViewer: CONSENTSYNC_VIEWER_TOKEN — reads only.
	RoleViewer
	// RoleAdmin: CONSENTSYNC_ADMIN_TOKEN — everything.
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// access is what a guarded route requires.
type access int

const (
	// reads: the viewer may GET and HEAD; every other method needs the
	// admin token (403 for the viewer).
	reads access = iota
	// adminOnly: the admin token for every method (403 for the viewer).
	adminOnly
	// scrape: /metrics — either token, or none when server.metrics_open.
	scrape
)

// realm is the protection space named in WWW-Authenticate (RFC 9110 §11.5).
const realm = `realm="consentsync"`

// RoleOf returns what r's credential allows: "Authorization: Bearer
// <token>" (RFC 6750 §2.1), or HTTP Basic auth with any user name and the
// token as password (RFC 7617; what a browser sends after its login
// prompt). Tokens are compared in constant time over their SHA-256, so
// neither their content nor their length shows in the answer time. An
// empty configured token matches nothing.
func (s *Server) RoleOf(r *http.Request) Role {
	got, ok := credential(r)
	if !ok {
		return RoleNone
	}
	admin := tokenEqual(got, s.Config.Process.AdminToken)
	viewer := tokenEqual(got, s.Config.Process.ViewerToken)
	switch {
	case admin:
		return RoleAdmin
	case viewer:
		return RoleViewer
	}
	return RoleNone
}

// credential extracts the presented token: a Bearer token, else a Basic
// password. Other schemes present nothing.
func credential(r *http.Request) (string, bool) {
	a := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(a, " "); ok && strings.EqualFold(scheme, "bearer") {
		tok = strings.TrimSpace(tok)
		return tok, tok != ""
	}
	if _, pw, ok := r.BasicAuth(); ok && pw != "" {
		return pw, true
	}
	return "", false
}

func tokenEqual(got, want string) bool {
	if want == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// isRead reports a method that changes nothing (RFC 9110 §9.2.1 safe
// methods a client of ours uses).
func isRead(method string) bool {
	return method == http.MethodGet || method == http.MethodHead
}

// guard serves h to requests whose credential allows need:
//   - no token configured (and, for scrape, metrics_open off): 403, the
//     ops surface is closed (fail closed);
//   - no or a wrong credential: 401 with two WWW-Authenticate headers, one
//     per scheme (Basic first, so a browser shows its login prompt; a
//     single header listing both is one a browser does not parse);
//   - the viewer token on an admin-only route or with a method other than
//     GET or HEAD: 403.
func (s *Server) guard(need access, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if need == scrape && s.Config.Server.MetricsOpen {
			h.ServeHTTP(w, r)
			return
		}
		p := s.Config.Process
		if p.AdminToken == "" && p.ViewerToken == "" {
			writeError(w, http.StatusForbidden, "ops endpoints disabled: set CONSENTSYNC_ADMIN_TOKEN (and CONSENTSYNC_VIEWER_TOKEN for read-only access)")
			return
		}
		role := s.RoleOf(r)
		switch {
		case role == RoleNone:
			w.Header().Add("WWW-Authenticate", "Basic "+realm+`, charset="UTF-8"`)
			w.Header().Add("WWW-Authenticate", "Bearer "+realm)
			writeError(w, http.StatusUnauthorized, "token required: Authorization: Bearer <token>, or any user name with the token as password")
			return
		case role == RoleViewer && need == adminOnly:
			writeError(w, http.StatusForbidden, "the viewer token is read-only: this needs CONSENTSYNC_ADMIN_TOKEN")
			return
		case role == RoleViewer && need == reads && !isRead(r.Method):
			writeError(w, http.StatusForbidden, "the viewer token is read-only: "+r.Method+" needs CONSENTSYNC_ADMIN_TOKEN")
			return
		}
		h.ServeHTTP(w, r)
	})
}
