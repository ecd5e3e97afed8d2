# kir — see README.md. Every target works on a fresh machine: the test
# control plane is built once into $(KIR_TEST_CACHE) and reused.
SHELL := /bin/bash
export KIR_TEST_CACHE ?= $(HOME)/.cache/kir-test
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X kir.dev/kir/cmd/kir/internal/cli.Version=$(VERSION)
# A static binary that never loads kustomize's Go plugins (k8s.io/kubectl's
# drain brings kustomize in): importing "plugin" would make the linker
# export every symbol, and loading those costs kir serve ~25 MB of resident
# memory (serve's benches run the binary this target builds).
BUILDFLAGS := -trimpath -tags kustomize_disable_go_plugin_support

.PHONY: build test testdeps testbin demo lint bench bench-compare docs fuzz clean help

BIN ?= bin/kir
build: ## build bin/kir (BIN=path elsewhere)
	CGO_ENABLED=0 $(GO) build $(BUILDFLAGS) -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/kir

testdeps: ## install the Debian packages the tests run (internal/kubetest/tools/debs.sh lists them) when missing, as root or with sudo
	@internal/kubetest/tools/debs.sh

testbin: ## build etcd, kube-apiserver, controller-manager, scheduler, kwok, cosign, Vault and kumo into the cache (once)
	@internal/kubetest/tools/build.sh >/dev/null

test: testdeps testbin ## run every test against the real control plane, then fuzz the playbook loader, the alert decoder and its JSON check briefly
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory fuzz FUZZLOAD=15000x FUZZDECODE=200000x FUZZVALID=150000x

# make test fuzzes by count, ~10 s each here: a time limit can end while a
# worker minimises, which go test reports as a failure (context deadline).
FUZZTIME ?= 1m
FUZZLOAD ?= $(FUZZTIME)
FUZZDECODE ?= $(FUZZTIME)
FUZZVALID ?= $(FUZZTIME)
fuzz: ## fuzz the playbook loader, the Falco alert decoder and its JSON check against encoding/json's (FUZZTIME=1m each)
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZLOAD) -fuzzminimizetime 200x ./playbooks/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZDECODE) -fuzzminimizetime 200x ./falco/
	$(GO) test -run '^$$' -fuzz '^FuzzValid$$' -fuzztime $(FUZZVALID) -fuzzminimizetime 200x ./falco/

docs: ## regenerate every generated file: docs/actions.md, docs/playbooks.md, the README's environment and exit-code tables, deploy/components/rbac/rbac.yaml, deploy/components/admission/fence.yaml and deploy/components/rotate-namespaced/roles.yaml (a test fails when one drifts)
	$(GO) test ./cmd/kir/internal/refdocs -run TestGenerated -count=1 -update

demo: build ## contain one replica of a demo app on a local control plane (evidence signed and verified), then release it
	@internal/kubetest/tools/build.sh --control-plane >/dev/null
	@docs/demo.sh

# staticcheck (its default checks) is pinned by
# internal/kubetest/tools/staticcheck/go.mod and built once into the
# cache, like the test servers; build.sh says why staticcheck. The
# kirtest build (the test binaries' kir, see cmd/kir/internal/cli/hook.go)
# is checked too, in the packages that have kirtest files.
KIRTEST_PKGS := ./cmd/kir/...
lint: ## go vet, gofmt and staticcheck
	$(GO) vet ./...
	$(GO) vet -tags kirtest $(KIRTEST_PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt wants to change:"; echo "$$out"; exit 1; fi
	@bin=$$(internal/kubetest/tools/build.sh --lint) && \
	"$$bin/staticcheck" ./... && "$$bin/staticcheck" -tags kirtest $(KIRTEST_PKGS)

bench: testbin ## print the timing figures: contain (one pod, with evidence, 1,000 pods), evidence verify vs sha256sum, image snapshot vs crane, kir serve latency, storm and intake
	$(GO) test -run '^$$' -bench ContainPod -benchtime 1x -count 1 ./cmd/kir/internal/cli/ | grep -E '^(Benchmark|ok|FAIL)'
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./contain/ | grep -E '^(Benchmark|ok|FAIL)'
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./evidence/ | grep -E '^(Benchmark|ok|FAIL)'
	$(GO) test -run '^$$' -bench . -benchtime 3x -count 1 ./collect/ | grep -E '^(Benchmark|ok|FAIL)'
	$(GO) test -run '^$$' -bench 'AlertToPolicy|AlertStorm|RecordsAndNotify|APIRequests' -benchtime 1x -count 1 -timeout 20m ./serve/ | grep -E '^(Benchmark|ok|FAIL)'
	$(GO) test -run '^$$' -bench Intake -benchtime 20000x -benchmem -count 1 ./serve/ | grep -E '^(Benchmark|ok|FAIL)'

# Paced POST-to-policy latency of kir built at REF (A) and of this tree (B),
# measured side by side at the same moments: on a VM whose speed varies,
# the only fair comparison of a change.
bench-compare: ## compare kir serve's paced latency with kir at REF: make bench-compare REF=main~3
	@test -n "$(REF)" || { echo "usage: make bench-compare REF=<git ref>" >&2; exit 2; }
	@tmp=$$(mktemp -d) && trap 'git worktree remove --force $$tmp/src >/dev/null 2>&1; rm -rf $$tmp' EXIT && \
	git worktree add --detach -q $$tmp/src $(REF) && \
	$(MAKE) -s -C $$tmp/src build BIN=$$tmp/kir-a && $(MAKE) -s build BIN=$$tmp/kir-b && \
	KIR_COMPARE_A=$$tmp/kir-a KIR_COMPARE_B=$$tmp/kir-b $(GO) test -run '^$$' -bench PacedCompare -benchtime 1x -count 3 ./serve/ | grep -E '^(Benchmark|ok|FAIL)'

clean: ## remove bin/ (the test servers' cache stays)
	rm -rf bin

help: ## list the targets
	@awk -F ':.*## ' '/^[a-z][a-z-]*:.*## / { printf "  %-14s %s\n", $$1, $$2 }' $(firstword $(MAKEFILE_LIST))
