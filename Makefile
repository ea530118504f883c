SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
# The operator is built the way the image builds it (deploy/Dockerfile):
# static, without cgo, so the demo, the e2e tests and `make bench` run and
# measure the binary that ships (no libc mapped beside it).
OPERATOR_BUILD := CGO_ENABLED=0 go build -trimpath
BIN      := bin
GOBIN    := $(abspath $(BIN))/tools
STATICCHECK_VERSION := v0.8.2
CONFIG   ?= config/samples/registry.yaml

##@ General
.PHONY: help
help: ## Show the targets
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Build
.PHONY: build
build: operator ## Build bin/registry-operator, bin/marathon-sim, bin/testfleet and bin/sandbox
	go build -o $(BIN)/marathon-sim ./cmd/marathon-sim
	go build -o $(BIN)/testfleet ./hack/cmd/testfleet
	go build -o $(BIN)/sandbox ./hack/cmd/sandbox

.PHONY: operator
operator: ## Build bin/registry-operator alone (static, as the image builds it)
	$(OPERATOR_BUILD) -ldflags "$(LDFLAGS)" -o $(BIN)/registry-operator ./cmd/registry-operator

.PHONY: image
image: ## Build the operator's container image (needs a Docker engine)
	docker build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) -t registry-operator/registry-operator:$(VERSION) .

.PHONY: run
run: build ## Run the operator with CONFIG (default: the sample) on :9090
	$(BIN)/registry-operator run --config $(CONFIG) --listen 127.0.0.1:9090

.PHONY: plan
plan: build ## Show what the operator would change for CONFIG
	$(BIN)/registry-operator plan --config $(CONFIG)

##@ Demo
.PHONY: demo
demo: ## As root: 3 agents + Marathon emulator + the operator on this machine, until Ctrl-C; DEMO_AUTH=1 with access control (docs/demo.md)
	hack/demo.sh

.PHONY: demo-down
demo-down: ## As root: stop the demo and remove every namespace, link, process and file it made
	hack/demo.sh down

##@ Test
.PHONY: deps
deps: ## Install the Debian packages the tests use (root)
	hack/install-deps.sh

.PHONY: test
test: ## Unit and integration tests (as root also the real-OpenSSH, registry and browser tests)
	go vet ./...
	go test -count=1 -timeout 30m ./...

.PHONY: race
race: ## Unit and integration tests under the race detector
	go test -race -count=1 -timeout 30m ./...

.PHONY: e2e
e2e: ## End-to-end suite on a sandbox (root; real sshd, docker-registry, skopeo)
	go test -count=1 -timeout 20m -tags e2e ./test/e2e/...

.PHONY: fuzz
fuzz: ## Fuzz the config loader for 60s
	go test ./api/v1alpha1 -run '^$$' -fuzz FuzzParse -fuzztime 60s

.PHONY: lint
lint: $(GOBIN)/staticcheck ## go vet, gofmt and staticcheck
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GOBIN)/staticcheck ./...

$(GOBIN)/staticcheck:
	GOBIN=$(GOBIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: bench
bench: build ## Benchmark against Ansible and ssh loops on real sshd hosts (root; BENCH_NODES=1000, BENCH_SCALE=1); writes docs/benchmarks.*
	hack/bench.sh

.PHONY: check-alerts
check-alerts: ## promtool check + test the Prometheus alert rules
	hack/check-alerts.sh

.PHONY: clean
clean: ## Remove build output
	rm -rf $(BIN)
