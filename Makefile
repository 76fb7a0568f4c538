# make run   - serve on :8080 with a private PostgreSQL, a development keyring and token
# make test  - go test -race ./... against the private PostgreSQL (or $DATABASE_URL)
#
# With DATABASE_URL set, that server is used and no private cluster is started.
# make run DYNAMICS_ALLOW_LOOPBACK=true (or make run-with-simulator) lets the
# service talk to the local simulator (make simulator) instead of Microsoft.
# make run sends webhooks to loopback receivers (WEBHOOK_ALLOW_LOOPBACK=true),
# so make webhook-receiver can subscribe itself and print signed events.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

DEV := .dev
PG := bash scripts/dev-postgres.sh
# The database for recipes: DATABASE_URL when given, else the private cluster.
DB_URL = $${DATABASE_URL:-$$($(PG) url)}

.PHONY: help run run-with-simulator simulator webhook-receiver test bench db db-stop fmt vet lint

help:
	@echo 'make run                 serve on :8080 (private PostgreSQL unless DATABASE_URL is set)'
	@echo 'make run-with-simulator  the same, with DYNAMICS_ALLOW_LOOPBACK=true for make simulator'
	@echo 'make simulator           run the local Dynamics 365 / Entra simulator'
	@echo 'make webhook-receiver    subscribe a local endpoint to make run'"'"'s events and print them, verified'
	@echo 'make test                go test -race ./... against PostgreSQL'
	@echo 'make bench               benchmarks, ending with create/pgbench, test-overhead and re-check figures'
	@echo 'make db | db-stop        start / stop the private PostgreSQL (scripts/dev-postgres.sh)'
	@echo 'make fmt | vet | lint    formatting and static checks (lint also checks openapi.yaml with redocly)'

db:
ifeq ($(DATABASE_URL),)
	@$(PG) start
endif

db-stop:
	@$(PG) stop

$(DEV)/keys:
	@mkdir -p $(DEV)
	@go run ./cmd/server keys generate > $@.tmp && chmod 600 $@.tmp && mv $@.tmp $@
	@echo "made a development keyring in $@"

$(DEV)/hs256:
	@mkdir -p $(DEV)
	@(umask 077 && head -c 32 /dev/urandom | base64 > $@)
	@echo "made a development JWT secret in $@"

run: db $(DEV)/keys $(DEV)/hs256
	@export DATABASE_URL="$(DB_URL)" ENCRYPTION_KEYS_FILE="$(CURDIR)/$(DEV)/keys" \
		AUTH_HS256_SECRET="$$(cat $(DEV)/hs256)" LISTEN_ADDR="$${LISTEN_ADDR:-:8080}" \
		METRICS_ADDR="$${METRICS_ADDR:-127.0.0.1:9090}" WEBHOOK_ALLOW_LOOPBACK="$${WEBHOOK_ALLOW_LOOPBACK:-true}"; \
	go build -o bin/dynconn-server ./cmd/server; \
	token=$$(go run ./cmd/devtoken); \
	base="localhost:$${LISTEN_ADDR##*:}"; \
	echo; \
	echo "Development token (account acct-dev, valid 24h):"; \
	echo "  export TOKEN=$$token"; \
	echo; \
	echo "Create a connection:"; \
	echo "  curl -sS -X POST $$base/connections -H \"Authorization: Bearer $$token\" -H 'Content-Type: application/json' \\"; \
	echo "    -d '{\"name\":\"Contoso\",\"instance_url\":\"https://contoso.crm.dynamics.com\",\"client_id\":\"3f2b5c1e-8d4a-4b6e-9c7f-1a2b3c4d5e6f\",\"client_secret\":\"Abc8Q~example-secret-value\"}'"; \
	echo; \
	echo "List them:  curl -sS $$base/connections -H \"Authorization: Bearer $$token\""; \
	echo "The modal:  http://$$base/modal/#token=$$token"; \
	echo "Readiness:  curl -sS $$base/readyz"; \
	echo "Metrics:    curl -sS $$METRICS_ADDR/metrics"; \
	echo "Webhooks:   make webhook-receiver   (in another terminal: subscribes http://127.0.0.1:9000/webhooks"; \
	echo "            to this server's events, prints each one with its verified signature, unsubscribes on Ctrl-C)"; \
	if [[ "$${DYNAMICS_ALLOW_LOOPBACK:-}" == true ]]; then echo "DYNAMICS_ALLOW_LOOPBACK=true: http://127.0.0.1:PORT instance URLs (make simulator) are allowed"; fi; \
	echo; \
	exec bin/dynconn-server serve

run-with-simulator:
	@$(MAKE) --no-print-directory run DYNAMICS_ALLOW_LOOPBACK=true

simulator:
	go run ./cmd/dynamics-simulator

# webhook-receiver: the dev token of make run's secret, unless TOKEN is set;
# DYNCONN_URL is the server (default http://localhost:8080); RECEIVER_FLAGS adds
# flags, e.g. RECEIVER_FLAGS='-fail-first 2' to watch retries.
webhook-receiver: $(DEV)/hs256
	@export TOKEN="$${TOKEN:-$$(AUTH_HS256_SECRET="$$(cat $(DEV)/hs256)" go run ./cmd/devtoken)}"; \
	exec go run ./cmd/webhook-receiver -subscribe "$${DYNCONN_URL:-http://localhost:8080}" $${RECEIVER_FLAGS:-}

test: db
	DATABASE_URL="$(DB_URL)" go test -race -count=1 ./...

# bench ends with the three comparisons that matter: creates through the API
# against pgbench inserting the same rows, and the test endpoint's overhead over
# a bare client (internal/api/bench_test.go), and scheduled re-checks against a
# bare loop (internal/jobs/bench_test.go), each measured in one run. -p 1: one
# package's benchmarks at a time, so that they do not share the cores.
bench: db
	@mkdir -p $(DEV)
	DATABASE_URL="$(DB_URL)" go test -p 1 -run '^$$' -bench . -benchmem ./... | tee $(DEV)/bench.txt
	@echo; echo 'dynconn beside its floor (same run, same machine; compare ratios, not absolute numbers):'
	@grep -hE '^ +bench_test.go:[0-9]+: (create|test endpoint|re-checks):' $(DEV)/bench.txt | sed -E 's/^ +bench_test.go:[0-9]+: /  /'

GO_FILES = $$(find . -name '*.go' -not -path './.dev/*' -not -path './.git/*')

fmt:
	gofmt -w $(GO_FILES)

vet:
	go vet ./...

# lint: no tracked binaries, formatting, vet, staticcheck and deadcode (pinned
# versions, fetched through the Go module proxy), and openapi.yaml with Redocly's
# recommended rules (0 warnings; .redocly.lint-ignore.yaml lists the accepted
# exceptions). Redocly is pinned so a new release's rules can't fail a build unasked.
STATICCHECK_VERSION := v0.7.0
DEADCODE_VERSION := v0.45.0
REDOCLY := npx --yes @redocly/cli@2.77.0
lint: vet
	@bash scripts/no-binaries.sh
	@unformatted=$$(gofmt -l $(GO_FILES)); \
	if [[ -n "$$unformatted" ]]; then echo "not gofmt'ed:"; echo "$$unformatted"; exit 1; fi
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@# Test-support packages (storetest, rotationtest, logtest, the simulator)
	@# exist for tests, and crypto.NewKeyring is the seam a KMS KEK plugs into;
	@# everything else must be reachable from a main package.
	go run golang.org/x/tools/cmd/deadcode@$(DEADCODE_VERSION) ./... \
		| { grep -vE '^internal/(store/storetest|rotation/rotationtest|logtest|dynamics/simulator)/|unreachable func: NewKeyring$$' || true; } | (! grep .)
	@command -v npx >/dev/null || { echo "npx not found: install Node.js (e.g. apt-get install npm) to lint openapi.yaml"; exit 1; }
	@# redocly fails on errors only; a warning fails here too.
	@out=$$($(REDOCLY) lint openapi.yaml 2>&1) || { echo "$$out"; exit 1; }; echo "$$out"; \
	if grep -Eq 'You have [0-9]+ warnings?' <<<"$$out"; then echo "openapi.yaml: fix the redocly warnings above"; exit 1; fi
