# hafeed — common tasks. `make help` lists them.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X github.com/hafeed/hafeed/cmd.version=$(VERSION)
DEV     := $(CURDIR)/.dev

.PHONY: help build test deps vet fmt-check run clean bench-conns

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/hafeed with the version embedded
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/hafeed ./cmd/hafeed

test: deps fmt-check vet ## what CI runs: gofmt, go vet, every test with -race (e2e with real HAProxy)
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e$$)
	@# The end-to-end tests run real HAProxy, agents and hundreds of clients:
	@# alone, so that their timing does not starve the unit tests or theirs.
	$(GO) test -race -count=1 -timeout 10m ./e2e

deps: ## install what the tests need when missing (HAProxy from Debian's packages)
	@if ! command -v haproxy >/dev/null 2>&1; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "haproxy is missing: run 'sudo apt-get update && sudo apt-get install -y haproxy', then make test again" >&2; exit 1; \
		fi; \
		echo "installing haproxy (apt-get)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy; \
	fi
	@haproxy -v | head -1

vet: ## go vet
	$(GO) vet ./...

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:" $$out >&2; exit 1; fi

run: build ## run the agent with dev paths under .dev/ (no root needed)
	@mkdir -p $(DEV)
	./bin/hafeed run --config deploy/dev.yaml \
		--control-socket $(DEV)/control.sock --state-file $(DEV)/state.json

clean: ## remove build output and dev state
	rm -rf bin $(DEV)

bench-conns: ## sampling cost at 100k connections: hafeed vs ss vs gopsutil
	$(GO) run ./bench/conns $(if $(QUICK),-conns 10000,)

.PHONY: sim
sim: ## run the load-balancing simulator (10/100/1000 hosts)
	@mkdir -p docs/img
	$(GO) run ./bench/sim -plot docs/img $(if $(QUICK),-quick,)
