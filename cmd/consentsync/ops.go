package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/internal/sandbox"
)

// healthcheck is `consentsync healthcheck [-url URL] [-timeout 3s]`: GET
// the URL (default: /readyz of this environment's OPS_ADDR, else of
// HTTP_ADDR, on the loopback when the address names no host) and exit 0
// on 200, 1 otherwise, printing the answer. It needs no shell or curl, so a
// distroless image's HEALTHCHECK can run it.
func healthcheck(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	u := fs.String("url", "", "URL to probe (default: http://<OPS_ADDR, else HTTP_ADDR>/readyz)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *u == "" {
		p, err := config.LoadProcess()
		if err != nil {
			return err
		}
		addr := p.OpsAddr
		if addr == "" {
			addr = p.HTTPAddr
		}
		if *u, err = probeURL(addr); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", *u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d %s", *u, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	_, err = fmt.Fprintf(out, "ok: %s %s\n", *u, strings.TrimSpace(string(body)))
	return err
}

// probeURL is the /readyz URL of listen address addr ("host:port"); an
// empty or unspecified host (":9090", "0.0.0.0:9090", "[::]:9090") is
// probed on 127.0.0.1.
func probeURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

// runSandbox is `consentsync sandbox [-addr :9200]`: the fake provider APIs
// (internal/sandbox: SendGrid, Mailchimp, HubSpot, Brevo, Postmark,
// Mailgun, Klaviyo, SES, Salesforce, each under its own path prefix, with
// the demo's credentials and the fixtures' HubSpot contacts) until
// SIGTERM, plus GET /healthz. docker-compose.yml points its destinations
// at it so that a first `docker compose up` needs no provider account.
func runSandbox(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	addr := fs.String("addr", ":9200", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	contacts, err := sandbox.FixtureContacts()
	if err != nil {
		return err
	}
	sb := sandbox.New(sandbox.WithHubSpotContacts(contacts))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	mux.Handle("/", sb.Handler())
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	log.Info("sandbox listening: fake provider APIs, not for production", "addr", ln.Addr().String())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
