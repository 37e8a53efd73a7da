# The Go version is go.mod's.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/consentsync ./cmd/consentsync

# Distroless: no shell, no package manager; the healthcheck is the binary's
# own subcommand (GET /readyz on OPS_ADDR, else HTTP_ADDR).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/consentsync /consentsync
# Webhooks on HTTP_ADDR; admin API, queue UI, /metrics and pprof on
# OPS_ADDR (behind CONSENTSYNC_ADMIN_TOKEN / CONSENTSYNC_VIEWER_TOKEN): on
# every interface of the container, so that the host or the cluster can
# reach it; publish it on a private address only.
ENV HTTP_ADDR=:8080 OPS_ADDR=:9090
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=6 CMD ["/consentsync", "healthcheck"]
ENTRYPOINT ["/consentsync"]
CMD ["all"]
