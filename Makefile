# codearts-recover-worker. `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

# Pinned tools, installed into ./bin from the Go module proxy (go.mod stays free of tools).
GOLANGCI_LINT_VERSION := v2.15.0
NATS_SERVER_VERSION   := v2.15.2
HELM_VERSION          := v3.22.0
GOVULNCHECK_VERSION   := v1.9.0

DEMO_ARGS ?=
RUN_ARGS  ?=
TEST_FLAGS ?= -race -count=1 -timeout 15m

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the worker binary into ./bin/worker
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/worker ./cmd/worker

.PHONY: test
test: ## Run all tests with the race detector (real in-process NATS, real SDK, simulator)
	$(GO) test $(TEST_FLAGS) ./...

.PHONY: test-short
test-short: ## Run the fast unit tests only
	$(GO) test -short -count=1 ./...

.PHONY: bench
bench: ## Run the Go micro-benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: fuzz
fuzz: ## Fuzz the request decoder for 30s
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./worker

.PHONY: demo
demo: ## Run the whole system on this machine: embedded NATS, simulated API, 1000 requests
	$(GO) run ./cmd/worker demo $(DEMO_ARGS)

.PHONY: run
run: build ## Run the worker against NATS_URL (default nats://127.0.0.1:4222); see README
	$(BIN)/worker run --log-format console $(RUN_ARGS)

.PHONY: simulate
simulate: build ## Run the simulated CodeArts API on 127.0.0.1:8090
	$(BIN)/worker simulate --addr 127.0.0.1:8090

.PHONY: fmt
fmt: ## Format the code
	$(GO) fmt ./...

$(BIN)/golangci-lint:
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

$(BIN)/nats-server:
	GOBIN=$(BIN) $(GO) install github.com/nats-io/nats-server/v2@$(NATS_SERVER_VERSION)

$(BIN)/govulncheck:
	GOBIN=$(BIN) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

.PHONY: tools
tools: $(BIN)/golangci-lint $(BIN)/nats-server ## Install the pinned tools into ./bin

.PHONY: lint
lint: $(BIN)/golangci-lint ## Run golangci-lint (pinned) and go vet
	$(GO) vet ./...
	$(BIN)/golangci-lint run ./...

.PHONY: vuln
vuln: $(BIN)/govulncheck ## Check dependencies for known vulnerabilities
	$(BIN)/govulncheck ./...

.PHONY: clean
clean: ## Remove build outputs and installed tools
	rm -rf $(BIN) coverage.out
