package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProbeURL(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		":9090": "http://127.0.0.1:9090/readyz", "0.0.0.0:8080": "http://127.0.0.1:8080/readyz", "[::]:8080": "http://127.0.0.1:8080/readyz",
		"127.0.0.1:9090": "http://127.0.0.1:9090/readyz", "10.0.0.5:9090": "http://10.0.0.5:9090/readyz", "[::1]:9090": "http://[::1]:9090/readyz",
	} {
		if got, err := probeURL(addr); err != nil || got != want {
			t.Errorf("probeURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
	if _, err := probeURL("9090"); err == nil {
		t.Error("probeURL(\"9090\") accepted an address without a port separator")
	}
}

// TestHealthcheck: exit 0 (nil) on 200 only; a 503 or no listener is an
// error naming the answer.
func TestHealthcheck(t *testing.T) {
	t.Parallel()
	code := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"postgres":"ok"}`))
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := healthcheck(context.Background(), []string{"-url", srv.URL + "/readyz"}, &out); err != nil || !strings.HasPrefix(out.String(), "ok: ") {
		t.Errorf("200: %v %q", err, out.String())
	}
	code = http.StatusServiceUnavailable
	if err := healthcheck(context.Background(), []string{"-url", srv.URL + "/readyz"}, &out); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("503: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := healthcheck(context.Background(), []string{"-url", "http://" + addr + "/readyz", "-timeout", "1s"}, &out); err == nil {
		t.Error("no listener: no error")
	}
}
