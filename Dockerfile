# syntax=docker/dockerfile:1

# Build a static binary: no cgo, so it runs on a distroless base with no libc.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/dynconn-server ./cmd/server

# distroless/static has CA certificates (for login.microsoftonline.com and
# Dataverse), tzdata and a nonroot user, and nothing else: no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dynconn-server /usr/local/bin/dynconn-server
USER nonroot:nonroot
ENV LISTEN_ADDR=:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dynconn-server"]
CMD ["serve"]
