package app

import "testing"

func TestPlainHTTPPublic(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url  string
		warn bool
	}{
		{"https://consent.example.com", false},
		{"http://consent.example.com", true},
		{"http://10.0.0.5:8080", true},
		{"http://127.0.0.1:8080", false},
		{"http://127.9.9.9", false},
		{"http://localhost:8080", false},
		{"http://LOCALHOST:8080", false},
		{"http://demo.localhost", false},
		{"http://[::1]:8080", false},
		{"http://[2001:db8::1]", true},
		{"http://localhost.example.com", true},
		{"", false},
		{"http://%zz", false},
	} {
		if got := plainHTTPPublic(c.url); got != c.warn {
			t.Errorf("plainHTTPPublic(%q) = %v, want %v", c.url, got, c.warn)
		}
	}
}
