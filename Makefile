# consentgate — thin wrappers over go commands. `make test` is what CI runs.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  := -X main.version=$(VERSION) -X main.buildDate=$(BUILD_DATE)
BIN      := bin/consentgate
FUZZTIME ?= 30s
GOLANGCI_LINT_VERSION := v2.15.0
GOBIN    ?= $(shell $(GO) env GOPATH)/bin

DIST     ?= dist
# Release versions are semantic versions from git tags: vMAJOR.MINOR.PATCH[-PRERELEASE].
SEMVER_RE := ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$$

.PHONY: all run build test test-unit test-race test-hostile test-faults bench fuzz lint tidy check-configs tcf-vectors bench-load bench-perhit test-browser docs test-deploy release

all: lint test

## run: the gateway on :8080 (admin on 127.0.0.1:9090) with the embedded config; Ctrl-C stops it at once
## (no drain; queued hits stay in the spool for the next start)
run: build
	@CONSENTGATE_TIMEOUTS_DRAIN=$${CONSENTGATE_TIMEOUTS_DRAIN:-0s} CONSENTGATE_DELIVERY_DRAIN=$${CONSENTGATE_DELIVERY_DRAIN:-0s} \
		exec $(BIN) serve

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/consentgate

## test: the whole suite, once without -race (allocation tests count only there) and once with it
test: test-unit test-race check-configs

test-unit:
	$(GO) test -count=1 -shuffle=on ./...

test-race:
	$(GO) test -count=1 -race -shuffle=on ./...

## test-hostile: the hostile-client suite against the real binary (stalled bodies, idle floods,
## slowloris, header floods, EMFILE under ulimit): a normal hit < 100 ms and RSS < 150 MiB
## throughout. Needs quiet CPUs, so it runs alone, not inside the parallel `make test`.
test-hostile:
	HOSTILE_SUITE=1 $(GO) test -count=1 -p 1 -v -run 'TestHostileClients|TestFileDescriptorExhaustion|TestMaxConnectionsFromFileLimit' ./cmd/consentgate

## test-faults: the fault suite: the real binary in queue mode against a failing fake upstream (refused, hanging, SIGTERM, kill -9, spool full); under 5 minutes
test-faults:
	$(GO) test -tags faults -count=1 -v -run Fault ./cmd/consentgate -timeout 10m

## check-configs: consentgate check on every sample config (their secret comes from the environment, as in production)
check-configs:
	@secret=$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'); \
	for f in testdata/config/*.yaml; do \
		env -u CONSENTGATE_CONFIG CONSENTGATE_COOKIELESS_SECRET=$$secret $(GO) run ./cmd/consentgate check --config $$f || exit 1; \
	done

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

## fuzz: each fuzz target for FUZZTIME (default 30s)
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) .ci/fuzz

## test-browser: Debian's Chromium (installed if missing) with a real consent banner and GA4 clients through the binary (testdata/browser)
test-browser:
	testdata/browser/run.sh

## tcf-vectors: regenerate the IAB TCF and GPP reference vectors with the IAB's npm libraries (needs node and npm)
tcf-vectors:
	testdata/iab/generate.sh
	$(GO) test -count=1 -run 'TC|GPP' ./consentmode

## test-deploy: Helm chart, alert rules, systemd unit, container, nginx recipes and
## make release, each tested as far as the machine allows (installs nginx, promtool,
## buildah from Debian when missing; needs root). See deploy/test/run.sh.
test-deploy:
	deploy/test/run.sh

## release: static linux/amd64 and linux/arm64 binaries and SHA256SUMS in $(DIST)/.
## VERSION comes from the git tag on HEAD (git tag v0.2.0); it must be semantic.
release:
	@echo "$(VERSION)" | grep -Eq '$(SEMVER_RE)' || { echo "release: version $(VERSION) is not vMAJOR.MINOR.PATCH[-pre]: tag HEAD (git tag v0.2.0) or set VERSION"; exit 1; }
	rm -rf $(DIST) && mkdir -p $(DIST)
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" \
			-o $(DIST)/consentgate-$(VERSION)-linux-$$arch ./cmd/consentgate || exit 1; \
	done
	cd $(DIST) && sha256sum consentgate-$(VERSION)-linux-* > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

## bench-load: consentgate vs nginx under wrk on loopback (see docs/benchmarks.md); installs nginx and wrk if missing;
## then bench/perhit.sh: system calls (by call) and CPU per hit against nginx, plain and TLS upstreams
bench-load:
	bench/run.sh
	bench/perhit.sh

## bench-perhit: only the system-call and CPU-per-hit table (about 4 minutes)
bench-perhit:
	bench/perhit.sh

## lint: gofmt, go vet, golangci-lint (pinned; installed on first use)
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	@test -x $(GOBIN)/golangci-lint && $(GOBIN)/golangci-lint version 2>/dev/null | grep -q $(GOLANGCI_LINT_VERSION:v%=%) || \
		$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	$(GOBIN)/golangci-lint run ./...
	$(GOBIN)/golangci-lint run --build-tags faults ./cmd/consentgate

tidy:
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

## docs: the pictures of docs/img/ from their sources (Graphviz, gnuplot; installed from Debian if missing).
## The tool version lines are left out so that the SVGs are the same bytes on every machine with these packages.
docs:
	@command -v dot >/dev/null && command -v gnuplot >/dev/null || \
		{ apt-get update && apt-get install -y --no-install-recommends graphviz gnuplot-nox fonts-dejavu-core; }
	dot -Tsvg docs/img/hit-path.dot | sed -e '/^<!-- Generated by graphviz/,/^ -->/d' > docs/img/hit-path.svg
	cd docs/img && gnuplot bench.gp | sed -e '/^<desc>Produced by GNUPLOT/d' > bench.svg
