# The Go version is go.mod's.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/consentsync ./cmd/consentsync

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/consentsync /consentsync
EXPOSE 8080
ENTRYPOINT ["/consentsync"]
CMD ["all"]
