# codearts-recover-worker. `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo.Commit=$(COMMIT)

# Pinned tools, installed into ./bin from the Go module proxy (go.mod stays free of tools).
GOLANGCI_LINT_VERSION := v2.15.0
NATS_SERVER_VERSION   := v2.15.2
HELM_VERSION          := v3.22.0
GOVULNCHECK_VERSION   := v1.9.0
CYCLONEDX_VERSION     := v1.10.0
PROMTOOL_VERSION      := v0.316.0

# make demo drains at most 100 req/s (15-20 s for 1000 requests) so the status
# page it prints can be watched; DEMO_ARGS= runs it at full speed.
DEMO_ARGS ?= --rate-limit 100
RUN_ARGS  ?=
TEST_FLAGS ?= -race -count=1 -timeout 15m

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the worker binary into ./bin/worker
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/worker ./cmd/worker

.PHONY: build-prod
build-prod: ## Build the image's binary (-tags nodemo: no embedded nats-server, no simulator) into ./bin/worker-prod and check its modules (go version -m)
	CGO_ENABLED=0 $(GO) build -tags nodemo -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/worker-prod ./cmd/worker
	@$(GO) version -m $(BIN)/worker-prod | grep -E 'nats-io/(nats-server|jwt)|codeartssim' && { echo "build-prod: the production binary links the demo pieces"; exit 1; } || true
	@echo "build-prod: $(BIN)/worker-prod links neither nats-server nor the simulator ($$($(GO) version -m $(BIN)/worker-prod | grep -c '^\s*dep') modules)"

.PHONY: test
test: ## Run all tests with the race detector (real in-process NATS, real SDK, simulator)
	$(GO) test $(TEST_FLAGS) ./...

.PHONY: test-short
test-short: ## Run the fast unit tests only
	$(GO) test -short -count=1 ./...

# The scenario benchmark is its own module (bench/, as deploy/helm/test is): it
# drives bin/worker (`worker run`) against the simulated API over HTTPS.
# BENCH_ARGS are passed to it, e.g. BENCH_ARGS="-scale 0.2 -repeat 1" for a
# quick run, "-scenarios latency -variant 'gogc100=$(BIN)/worker GOGC=100'"
# for an A/B of two binaries or settings, "-json" for a machine-readable
# report. Three interleaved runs of each scenario, medians under the table.
BENCH_ARGS ?= -naive zero,latency -repeat 3

.PHONY: bench
bench: build ## Micro-benchmarks (briefly), then the scenario table (bench/): worker run fleets + nats-server + SDK + simulator over HTTPS, 3 runs each, the backlog once (~20 min)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 100ms ./...
	cd bench && $(GO) run . -worker-bin $(BIN)/worker $(BENCH_ARGS)

.PHONY: fuzz
fuzz: ## Fuzz the request decoder for 30s
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./worker

.PHONY: demo
demo: ## Run the whole system on this machine (embedded NATS, simulated API, 1000 requests); watch it on the printed status page URL
	$(GO) run ./cmd/worker demo $(DEMO_ARGS)

.PHONY: demo-campaign
demo-campaign: build $(BIN)/nats-server ## A campaign through the CLI: discover -> enqueue -> run --verify -> report (JOBS, PROJECTS, DISABLED, QUOTA, RUN_FLAGS)
	BIN=$(BIN) ./scripts/demo-campaign.sh

.PHONY: run
run: build ## Run the worker against NATS_URL (default nats://127.0.0.1:4222); see README
	$(BIN)/worker run --log-format console $(RUN_ARGS)

.PHONY: simulate
simulate: build ## Run the simulated CodeArts API on 127.0.0.1:8090
	$(BIN)/worker simulate --addr 127.0.0.1:8090

.PHONY: chromium
chromium: ## Install Debian's chromium (for the status page's browser tests) when /usr/bin/chromium is missing
	@if [ -x /usr/bin/chromium ]; then echo "chromium: /usr/bin/chromium is there"; else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends chromium; \
	fi

.PHONY: screenshot
screenshot: chromium ## Take docs/status-page.png: the status page in headless chromium during a demo drain
	STATUS_PAGE_SCREENSHOT=$(CURDIR)/docs/status-page.png $(GO) test -count=1 -run '^TestStatusPageScreenshot$$' ./cmd/worker

.PHONY: fmt
fmt: ## Format the code
	$(GO) fmt ./...

$(BIN)/golangci-lint:
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

$(BIN)/nats-server:
	GOBIN=$(BIN) $(GO) install github.com/nats-io/nats-server/v2@$(NATS_SERVER_VERSION)

$(BIN)/govulncheck:
	GOBIN=$(BIN) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

CYCLONEDX_STAMP := $(BIN)/.cyclonedx-gomod-$(CYCLONEDX_VERSION)
$(CYCLONEDX_STAMP):
	GOBIN=$(BIN) $(GO) install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_VERSION)
	@touch $@

PROMTOOL_STAMP := $(BIN)/.promtool-$(PROMTOOL_VERSION)
$(PROMTOOL_STAMP):
	GOBIN=$(BIN) $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)
	@touch $@

.PHONY: tools
tools: $(BIN)/golangci-lint $(BIN)/nats-server ## Install the pinned tools into ./bin

.PHONY: lint
lint: $(BIN)/golangci-lint ## Run golangci-lint (pinned) and go vet, on the worker and on the bench module
	$(GO) vet ./...
	$(BIN)/golangci-lint run ./...
	cd bench && $(GO) vet ./... && $(BIN)/golangci-lint run ./...

.PHONY: vuln
vuln: $(BIN)/govulncheck ## Check dependencies for known vulnerabilities
	$(BIN)/govulncheck ./...

# --- Releases ---------------------------------------------------------------

# The platforms of .goreleaser.yaml; RELEASE_PLATFORMS=linux/amd64 builds one.
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

.PHONY: release-snapshot
release-snapshot: $(CYCLONEDX_STAMP) ## Build the release into dist/: an archive per platform (stamped binary, README, CHANGELOG, runbook), an SBOM each, checksums.txt (~4 min a platform on a cold cache)
	scripts/release-snapshot.sh $(VERSION) $(COMMIT) $(RELEASE_PLATFORMS)

.PHONY: chart-package
chart-package: $(HELM_STAMP) ## Lint and package the Helm chart (with its README, values schema and examples/) into dist/
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f $(CHART)/examples/production-values.yaml
	$(HELM) package $(CHART) --destination dist

.PHONY: clean
clean: ## Remove build outputs and installed tools
	rm -rf $(BIN) dist coverage.out

.PHONY: e2e
e2e: build $(BIN)/nats-server ## Process-level fault suite: real worker and nats-server processes, crashes, partitions, bad input (e2e/README.md)
	E2E_BIN=$(BIN) $(GO) test -tags e2e -count=1 -timeout 15m -v ./e2e/...

# The randomized fault soak (e2e/soak_test.go, build tags e2e and soak, so
# `make e2e` does not run it): SOAK_DURATION of faults drawn from SOAK_SEED
# (default: drawn and printed), then the drain and the checker. An hour:
# make soak SOAK_DURATION=1h SOAK_TIMEOUT=90m
SOAK_DURATION ?= 2m
SOAK_SEED     ?=
SOAK_TIMEOUT  ?= 20m

.PHONY: soak
soak: build $(BIN)/nats-server ## Randomized, seeded fault soak over real processes (SOAK_DURATION=2m, SOAK_SEED=N replays a run; e2e/README.md)
	E2E_BIN=$(BIN) SOAK_DURATION=$(SOAK_DURATION) SOAK_SEED=$(SOAK_SEED) \
		$(GO) test -tags 'e2e soak' -count=1 -timeout $(SOAK_TIMEOUT) -run '^TestSoak$$' -v ./e2e/

# --- Kubernetes: chart and image ------------------------------------------

CHART       := deploy/helm/codearts-recover-worker
HELM        := $(BIN)/helm
HELM_STAMP  := $(BIN)/.helm-$(HELM_VERSION)
# What helm's own Makefile stamps in: its version, and the Kubernetes version
# of its client-go (v0.37 in helm v3.22.0) for capabilities and lint rules;
# without them `go install` builds a helm that renders for Kubernetes 1.20.
HELM_K8S_MINOR := 37
HELM_LDFLAGS := -s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR) \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR)

IMAGE            ?= codearts-recover-worker:$(VERSION)
CONTAINER_ENGINE ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)

$(HELM_STAMP):
	GOBIN=$(BIN) $(GO) install -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@touch $@

.PHONY: helm
helm: $(HELM_STAMP) ## Install the pinned helm into ./bin (built from the Go module proxy)

.PHONY: chart-lint
chart-lint: $(HELM_STAMP) ## helm lint --strict and helm template the chart with default and full values
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f $(CHART)/ci/full-values.yaml
	$(HELM) template ci $(CHART) > /dev/null
	$(HELM) template ci $(CHART) -f $(CHART)/ci/full-values.yaml --api-versions monitoring.coreos.com/v1 > /dev/null
	$(HELM) lint --strict $(CHART) -f $(CHART)/examples/production-values.yaml

.PHONY: chart-test
chart-test: $(HELM_STAMP) $(PROMTOOL_STAMP) ## Go render tests of the chart (own modules: deploy/helm/test for the newest Kubernetes, its oldest/ for 1.25), then promtool check and unit-test the alerting rules
	cd deploy/helm/test && HELM=$(HELM) PROMTOOL=$(BIN)/promtool $(GO) test -count=1 ./...
	cd deploy/helm/test/oldest && HELM=$(HELM) $(GO) test -count=1 ./...
	$(BIN)/promtool check rules deploy/prometheus/codearts-recover-worker-rules.yaml
	$(BIN)/promtool test rules deploy/prometheus/codearts-recover-worker-rules.test.yaml

.PHONY: image
image: ## Build the container image (IMAGE=name:tag) with docker or podman
	@if [ -z "$(CONTAINER_ENGINE)" ] || ! $(CONTAINER_ENGINE) info >/dev/null 2>&1; then \
		echo "make image: no container engine (docker or podman, with its daemon running) on this machine,"; \
		echo "so the image cannot be built here. The Dockerfile is ready: run 'make image' where one runs."; \
		exit 1; \
	fi
	$(CONTAINER_ENGINE) build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .
