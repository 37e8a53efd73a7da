package pages

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the client's address: the connection's, or the last entry
// of header (pages.client_ip_header, set by a reverse proxy you run) when
// configured and readable. The zero Addr when none can be read.
func clientAddr(r *http.Request, header string) netip.Addr {
	if header != "" {
		if v := r.Header.Values(header); len(v) > 0 {
			parts := strings.Split(v[len(v)-1], ",")
			if a, err := netip.ParseAddr(strings.TrimSpace(parts[len(parts)-1])); err == nil {
				return a.Unmap()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// TruncateIP is the address kept as evidence: the /24 network of an IPv4
// address, the /48 of an IPv6 one ("203.0.113.0/24", "2001:db8:1::/48"),
// so the ledger proves where a choice came from without keeping the
// person's exact address (GDPR art. 5(1)(c), data minimisation). "" for an
// invalid address.
func TruncateIP(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// limitKey is the rate limiter's key for a: the IPv4 address, or the /64
// of an IPv6 one (a host usually holds a whole /64).
func limitKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
