# Flotilla build entry points. Everything a target needs, it installs itself.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO ?= go
BIN := $(CURDIR)/bin
TOOLS := $(CURDIR)/.cache/tools
CONTROLLER_GEN_VERSION := v0.23.0
CONTROLLER_GEN := $(TOOLS)/controller-gen-$(CONTROLLER_GEN_VERSION)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/flotilla-dev/flotilla/api/version.Version=$(VERSION)
TEST_TIMEOUT ?= 25m
# go test runs packages in the order named: those whose tests start API servers
# (their test binaries link the control-plane harness) go first, the two longest
# first; they mostly wait, and the other packages build and run meanwhile. -p 3, one
# more package at a time than the 2 cores of CI, for the same reason. Expanded only
# when make test runs.
TEST_P ?= 3
API_SERVER_TESTS = ./test/integration ./spoke/agent $(shell $(GO) list -test -f '{{if .ForTest}}{{.ForTest}} {{join .Deps " "}}{{end}}' ./... | awk '/(fleet\/devenv\/controlplane|controller-runtime\/pkg\/envtest)( |$$)/ {print $$1}' | sort -u)

.PHONY: all build build-agent-kms generate verify test bench bench-fleet bench-apiserver demo control-plane fuzz clean images push

all: build

build: ## Build bin/flotilla, bin/flotilla-hub and bin/flotilla-agent.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/flotilla ./fleet/cmd/flotilla
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/flotilla-hub ./hub/cmd/flotilla-hub
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/flotilla-agent ./spoke/cmd/flotilla-agent

build-agent-kms: ## Build bin/flotilla-agent-kms: the agent with SOPS keys from Vault transit and cloud KMS (build tag sopskms).
	CGO_ENABLED=0 $(GO) build -trimpath -tags sopskms -ldflags '$(LDFLAGS)' -o $(BIN)/flotilla-agent-kms ./spoke/cmd/flotilla-agent

# Container images, without a container engine (fleet/images): static binaries for
# every platform on a minimal base, one OCI layout per image under bin/images/.
PLATFORMS ?= linux/amd64,linux/arm64
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
REGISTRY ?=

images: ## Build the flotilla-hub and flotilla-agent images (PLATFORMS) as OCI layouts in bin/images/.
	$(GO) run ./hack/images build -out $(BIN)/images -version $(VERSION) -revision '$(REVISION)' -created $(SOURCE_DATE_EPOCH) -platforms $(PLATFORMS)

push: ## Push bin/images to REGISTRY (e.g. make push REGISTRY=registry.example.com/flotilla), with the Docker config's credentials.
	@test -n "$(REGISTRY)" || { echo "usage: make push REGISTRY=host/repo"; exit 1; }
	$(GO) run ./hack/images push -from $(BIN)/images -registry $(REGISTRY)

$(CONTROLLER_GEN):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(TOOLS)/controller-gen $(CONTROLLER_GEN)

generate: $(CONTROLLER_GEN) ## Regenerate deepcopy code and CRDs into deploy/crds.
	$(CONTROLLER_GEN) object paths=./api/...
	rm -rf deploy/crds && $(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=deploy/crds
	bash hack/crd-kustomization.sh deploy/crds

verify: generate ## Fail when generated files are stale or code is not gofmt'ed/vetted.
	@git diff --exit-code -- api deploy/crds || { echo "generated files are stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api deploy/crds)" || { git status --porcelain -- api deploy/crds; echo "untracked generated files: run make generate and commit"; exit 1; }
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; test -z "$$out" || { echo "not gofmt'ed: $$out"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags sopskms ./spoke/... ./fleet/images/
	$(GO) run ./hack/layers

control-plane: ## Build (once) and cache kube-apiserver, kube-controller-manager, etcd and kwok.
	@bash hack/control-plane.sh >/dev/null

test: control-plane ## Run every test, real control planes included.
	FLOTILLA_CONTROL_PLANE="$$(bash hack/control-plane.sh)" $(GO) test -count=1 -p $(TEST_P) -timeout $(TEST_TIMEOUT) $(API_SERVER_TESTS) ./...
	$(GO) test -count=1 -tags sopskms ./spoke/sops/ # the flotilla-agent-kms key services

bench: control-plane build ## Print performance figures (long; not part of make test).
	FLOTILLA_CONTROL_PLANE="$$(bash hack/control-plane.sh)" $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 60m ./test/bench/...

# FLOTILLA_BENCH_CLUSTERS (default 10,100,1000) and FLOTILLA_BENCH_DEPLOYMENTS (10)
# size the fleet; profiles of the hub land in .cache/bench-fleet.
bench-fleet: control-plane build ## The hub at fleet scale: simulated clusters, one commit, its rollout (long).
	FLOTILLA_CONTROL_PLANE="$$(bash hack/control-plane.sh)" $(GO) test -tags fleetbench -count=1 -v -run '^TestBenchFleet$$' -timeout 180m ./test/fleetbench/

bench-apiserver: control-plane ## kube-apiserver's own CPU per request kind the fleet makes (the floor under bench-fleet).
	FLOTILLA_CONTROL_PLANE="$$(bash hack/control-plane.sh)" $(GO) test -tags fleetbench -count=1 -v -run '^TestAPIServerCost$$' -timeout 30m ./test/fleetbench/ | sed -n '/^make bench-apiserver/,$$p'

# Every fuzz target, as package:Target; `make fuzz FUZZTIME=10m` runs each that long.
FUZZ_TARGETS := ./api/artifact:FuzzUnpack ./api/artifact:FuzzPackRoundTrip ./api/artifact:FuzzStatement \
	./spoke/apply:FuzzParse ./spoke/postbuild:FuzzExpand ./spoke/postbuild:FuzzSubstituteYAML
FUZZTIME ?= 1m

fuzz: ## Run each fuzz target for FUZZTIME (default 1m); new crashers land in testdata/fuzz.
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "== $$fn ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg | tail -n 3 || exit 1; done

demo: control-plane build ## Start a local fleet syncing examples/, print its health, stop it.
	bash hack/demo.sh

clean:
	rm -rf $(BIN) .dev
