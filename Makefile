# hafeed — common tasks. `make help` lists them.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X github.com/hafeed/hafeed/cmd.version=$(VERSION)
DEV     := $(CURDIR)/.dev
# The benchmarks are a module of their own (bench/go.mod), so that their
# plotting library stays out of the daemon's go.mod; go.work puts the two
# in one workspace, which the targets below rely on to name ./bench/...
# from here.
BENCH   := ./bench/...

.PHONY: help build test deps deps-haproxy-matrix deps-node deps-prometheus check-rules vet fmt-check run clean bench-conns

help: ## list the targets (QUICK=1: a short smoke run of sim, bench-conns, bench-balance and bench-farm)
	@echo "make TARGET [QUICK=1]:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

build: ## build bin/hafeed with the version embedded
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/hafeed ./cmd/hafeed

# The HAProxy lines the e2e matrix adds to the system's (2.6 on Debian 12):
# Debian releases whose haproxy package scripts/haproxy-versions.sh fetches.
HAPROXY_MATRIX ?= trixie sid
# The Debian release whose prometheus and promtool scripts/prometheus.sh
# fetches, for the rules' checks and the e2e against a real Prometheus.
PROMETHEUS_RELEASE ?= trixie
# Each command that runs tests reads the fetched binaries first (HAProxy's
# and Prometheus'), and stops if one is missing.
WITH_MATRIX     = bins=$$(scripts/haproxy-versions.sh bins $(HAPROXY_MATRIX)) && prom=$$(scripts/prometheus.sh bin $(PROMETHEUS_RELEASE)) && HAFEED_HAPROXY_BINS=$$bins HAFEED_PROMETHEUS=$$prom

test: deps fmt-check vet ## what CI runs: gofmt, go vet, every test with -race (the Prometheus rules with promtool); e2e against HAProxy 2.6, 3.0 and 3.2
	$(WITH_MATRIX) $(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e$$) $(BENCH)
	@# The end-to-end tests run real HAProxy, agents and hundreds of clients:
	@# alone, so that their timing does not starve the unit tests or theirs.
	$(WITH_MATRIX) $(GO) test -race -count=1 -timeout 20m ./e2e
	@echo "*** e2e: the closed loop (TestClosedLoop) ran on the system's HAProxy only, NOT on 3.0 and 3.2: make test-closedloop runs it on every line"

# The closed loop (e2e/closedloop_test.go, issue 18) sizes a farm of
# CPU-bound hosts with an autoscaler for about four minutes per HAProxy
# line, alone on the machine: three lines in a row would not fit in CI's
# 20 minutes beside the rest (on 2 CPUs ./e2e took 13 min with the system's
# line, about 9.5 without), so make test runs it on the system's HAProxy
# and this target on 2.6, 3.0 and 3.2, one after another. (Measured once:
# two lines at once keep their figures within 2 s of a run alone; go
# test's -parallel, the CPUs' count, runs no more than two.)
.PHONY: test-closedloop
test-closedloop: deps ## the e2e closed loop (autoscaler with add/del server, clients up then down) on HAProxy 2.6, 3.0 and 3.2, ~12 min; make test runs it on the system's only
	bins=$$(scripts/haproxy-versions.sh bins $(HAPROXY_MATRIX)) && HAFEED_HAPROXY_BINS=$$bins HAFEED_CLOSEDLOOP=all \
		$(GO) test -race -count=1 -v -run '^TestClosedLoop$$' -timeout 25m ./e2e

deps: ## what the tests need: HAProxy (Debian's package, as root, when missing), 3.0 and 3.2 privately, nfpm
	@if ! command -v haproxy >/dev/null 2>&1; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "haproxy is missing: run 'sudo apt-get update && sudo apt-get install -y haproxy', then make test again" >&2; exit 1; \
		fi; \
		echo "installing haproxy (apt-get)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy; \
	fi
	@haproxy -v | head -1

deps: deps-haproxy-matrix deps-node
deps-node: ## Node.js and npm for the e2e tests' Node servers and examples (Debian's packages, only with CI=true, when missing)
	@missing=""; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		if [ "$$CI" != true ] || [ "$$(id -u)" != 0 ]; then \
			echo "missing:$$missing: run 'sudo apt-get update && sudo apt-get install -y$$missing' (Node.js 18 or later), then make test again" >&2; exit 1; \
		fi; \
		echo "installing$$missing (apt-get)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends$$missing; \
	fi
	@echo "node $$(node --version), npm $$(npm --version)"
deps: deps-prometheus
deps-prometheus: ## Prometheus and promtool from Debian's package into ~/.cache/hafeed/prometheus (no system change; cached)
	@scripts/prometheus.sh fetch $(PROMETHEUS_RELEASE)
	@$$(scripts/prometheus.sh bin $(PROMETHEUS_RELEASE))/promtool --version | head -1

check-rules: deps-prometheus ## promtool check rules and test rules on deploy/prometheus/hafeed-rules.yml (make test runs them too)
	@prom=$$(scripts/prometheus.sh bin $(PROMETHEUS_RELEASE)) && \
	$$prom/promtool check rules deploy/prometheus/hafeed-rules.yml && \
	cd deploy/prometheus && $$prom/promtool test rules hafeed-rules_test.yml

deps-haproxy-matrix: ## HAProxy 3.0 and 3.2 from Debian's packages into ~/.cache/hafeed/haproxy (no system change; cached)
	@scripts/haproxy-versions.sh fetch $(HAPROXY_MATRIX)
	@for b in $$(scripts/haproxy-versions.sh bins $(HAPROXY_MATRIX) | tr : ' '); do $$b -v | head -1; done

vet: ## go vet, the daemon's module and the benchmarks'
	$(GO) vet ./... $(BENCH)

fmt-check: ## fail if gofmt would change a file (both modules)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:" $$out >&2; exit 1; fi

run: build ## run the agent with dev paths under .dev/ (no root needed)
	@mkdir -p $(DEV)
	./bin/hafeed run --config deploy/dev.yaml \
		--control-socket $(DEV)/control.sock --state-file $(DEV)/state.json

clean: ## remove build output and dev state
	rm -rf bin $(DEV)

bench-conns: ## sampling cost at 100k connections: hafeed vs ss vs gopsutil (QUICK=1: 10k)
	$(GO) run ./bench/conns $(if $(QUICK),-conns 10000,)

.PHONY: sim
sim: ## the load-balancing simulator, 10/100/1000 hosts, the autoscaled and daily farms; REWRITES the tracked docs/img/sim-utilisation.png and sim-daily.png (QUICK=1: a smoke run, plots into .dev/sim)
	@mkdir -p $(if $(QUICK),$(DEV)/sim,docs/img)
	$(GO) run ./bench/sim $(if $(QUICK),-quick -plot $(DEV)/sim,-plot docs/img)

# --- Debian package and systemd unit (docs/OPERATIONS.md, packaging/) ---
# nfpm is pinned and installed under bin/tools by `go install`, outside go.mod.
NFPM_VERSION ?= v2.45.2
NFPM         := $(CURDIR)/bin/tools/nfpm-$(NFPM_VERSION)/nfpm
DIST         ?= $(CURDIR)/bin/dist
# A Debian version from $(VERSION): v1.2.0 -> 1.2.0, v1.2.0-3-gabc1234 ->
# 1.2.0+3.gabc1234 (sorts after 1.2.0), -dirty or -rc1 -> ~dirty, ~rc1
# (sort before), and no tag (a bare commit, "devel") -> 0~<it>.
DEB_VERSION  ?= $(shell echo '$(VERSION)' | sed -E 's/^v([0-9]+\.)/\1/; s/-([0-9]+)-g([0-9a-f]+)/+\1.g\2/; s/-/~/g; /^[0-9]+\./!s/^/0~/')
DEB_ARCH     ?= $(shell $(GO) env GOARCH)
DEB          := $(DIST)/hafeed_$(DEB_VERSION)_$(DEB_ARCH).deb
PKG_BUILD    := $(DIST)/build-$(DEB_ARCH)

.PHONY: deb deps-packaging test-packaging
deps: deps-packaging

# nfpm goes into bin/tools; the system packages only under CI=true (as
# root). Elsewhere a missing one is named, and the checks that need it are
# skipped, saying so: a skipped check has not passed.
deps-packaging: $(NFPM) ## what the packaging tests need: nfpm (bin/tools); systemd, dpkg, adduser only with CI=true
	@missing=""; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v dpkg-deb >/dev/null 2>&1 || missing="$$missing dpkg"; \
	command -v adduser >/dev/null 2>&1 || missing="$$missing adduser"; \
	command -v deb-systemd-helper >/dev/null 2>&1 || missing="$$missing init-system-helpers"; \
	if [ -n "$$missing" ]; then \
		if [ "$$CI" != true ]; then \
			echo "*** missing:$$missing. The packaging checks that need them will be SKIPPED, NOT PASSED." >&2; \
			echo "*** Install them with 'sudo apt-get install -y$$missing' (CI=true installs them as root)." >&2; \
		elif [ "$$(id -u)" != 0 ]; then \
			echo "missing:$$missing: CI=true installs them as root only: run 'sudo apt-get install -y$$missing'" >&2; exit 1; \
		else \
			echo "installing$$missing (apt-get, CI=true)"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
		fi; \
	fi
	@! command -v systemd-analyze >/dev/null 2>&1 || systemd-analyze --version | head -1

$(NFPM):
	GOBIN=$(dir $(NFPM)) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

deb: $(NFPM) ## build bin/dist/hafeed_<version>_<arch>.deb: binary, unit, conffile, completions
	rm -rf $(PKG_BUILD) && mkdir -p $(PKG_BUILD)/completions
	CGO_ENABLED=0 GOOS=linux GOARCH=$(DEB_ARCH) $(GO) build -trimpath -ldflags "$(LDFLAGS) -s -w" -o $(PKG_BUILD)/hafeed ./cmd/hafeed
	@# The config example and completions come from the binary (the host's
	@# build of it when cross-compiling).
	@set -e; if [ "$(DEB_ARCH)" = "$$($(GO) env GOHOSTARCH)" ]; then gen=$(PKG_BUILD)/hafeed; \
	else gen="$(GO) run -trimpath ./cmd/hafeed"; fi; \
	$$gen config example > $(PKG_BUILD)/hafeed.yaml; \
	$$gen completion bash > $(PKG_BUILD)/completions/hafeed.bash; \
	$$gen completion zsh > $(PKG_BUILD)/completions/_hafeed; \
	$$gen completion fish > $(PKG_BUILD)/completions/hafeed.fish
	HAFEED_DEB_VERSION='$(DEB_VERSION)' HAFEED_DEB_ARCH='$(DEB_ARCH)' HAFEED_PKG_BUILD='$(PKG_BUILD)' \
		$(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(DEB)
	@echo "built $(DEB)"

# The packaging tests build the .deb and check it without installing it.
# Their install test (dpkg -i, upgrade, purge, the user hafeed) changes the
# machine: it runs only with CI=true or HAFEED_TEST_DPKG=1, as root. Tag
# "packaging": run alone, not beside the other packages'. Skipped checks are
# listed again at the end, so that none passes for run.
test: test-packaging

test-packaging: deps-packaging ## the unit's and the .deb's tests (install/purge only with CI=true or HAFEED_TEST_DPKG=1)
	$(GO) vet -tags packaging ./packaging
	@out=$$(mktemp); status=0; \
	$(GO) test -tags packaging -count=1 -v -timeout 5m ./packaging >$$out 2>&1 || status=$$?; \
	cat $$out; \
	if grep -q -e '--- SKIP' $$out; then \
		echo "*** packaging: these checks were SKIPPED, NOT PASSED:"; grep -e '--- SKIP' -e 'SKIPPED, NOT PASSED' $$out; \
	fi; \
	rm -f $$out; exit $$status

.PHONY: docs
docs: ## regenerate docs/CONFIG.md from the example configuration
	$(GO) run ./cmd/gendocs

.PHONY: bench-balance demo
bench-balance: ## real HAProxy, backends, agents and clients: roundrobin vs leastconn vs hafeed; REWRITES the tracked docs/img/balance-*.png (QUICK=1: a subset, under 2 min, plots into .dev/balance)
	@mkdir -p docs/img $(DEV)/balance
	$(GO) run ./bench/balance -json-out $(DEV)/balance/results$(if $(QUICK),-quick,).json $(if $(QUICK),-quick -out $(DEV)/balance,-out docs/img)

# bench-farm runs as root (the agents shed through the kernel, which needs
# CAP_NET_ADMIN) and changes no sysctl; every process and temp dir it starts
# goes at the end, on failure and on Ctrl-C.
.PHONY: bench-farm
bench-farm: ## 100k WebSockets through HAProxy processes to 4 hosts with hafeed (root; about 5 min): the most one HAProxy holds, connect time, agent CPU/RSS, balance, drain at 1,000/s, a 5th host; REWRITES the tracked docs/img/farm-hosts.png (QUICK=1: 10k through 2 HAProxies, about 2 min, plot into .dev/farm)
	@mkdir -p docs/img $(DEV)/farm
	$(GO) run ./bench/farm -json-out $(DEV)/farm/results$(if $(QUICK),-quick,).json $(if $(QUICK),-quick -out $(DEV)/farm,-out docs/img)

demo: ## live demo for 90 s: HAProxy, 3 backends with hafeed, clients; drains one, adds one (needs haproxy on PATH)
	@$(GO) run ./demo
