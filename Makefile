# deskgate — build, test, run, install, benchmark.
# `make run` and `make test` do all set-up on a fresh Debian 12 machine with a Swift 6 toolchain.

SWIFT        ?= swift
PREFIX       ?= /usr/local
DESTDIR      ?=
BINDIR       := $(PREFIX)/bin
UNITDIR      := $(PREFIX)/lib/systemd/user
DOCDIR       := $(PREFIX)/share/doc/deskgate
CONFIG       ?= debug
BIN          := .build/$(CONFIG)
EXECUTABLES  := deskgated deskgate deskgate-prompt deskgate-mcp
DEPS_STAMP   := .build/.deps-ok

.PHONY: all deps build build-release test test-unit run install uninstall bench clean

all: build

# System packages (apt-get, via sudo when not root; skips what is installed) and the
# Python virtualenv used by the MCP client tests.
deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/deps.sh
	bash scripts/deps.sh
	@mkdir -p .build && touch $@

build: deps
	$(SWIFT) build -c $(CONFIG)

build-release: deps
	$(SWIFT) build -c release

# Every test, the AT-SPI ones against real apps on a private headless desktop.
test: deps
	$(SWIFT) build --build-tests
	bash scripts/headless-desktop.sh --app qt5 --app gtk4 --app gtk3 -- bash scripts/run-tests.sh $(TEST_ARGS)

# Pure-logic and socket tests only (no desktop needed).
test-unit: deps
	$(SWIFT) test --skip JSONRPCFuzzLong $(TEST_ARGS)

# The daemon: against the real session when there is one, else inside a headless desktop with a demo app.
run: build
	bash scripts/run-demo.sh

install: build-release
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	for exe in $(EXECUTABLES); do install -m 0755 .build/release/$$exe $(DESTDIR)$(BINDIR)/$$exe; done
	sed 's|@BINDIR@|$(BINDIR)|g' systemd/deskgate.service > $(DESTDIR)$(UNITDIR)/deskgate.service
	install -m 0644 systemd/deskgate.socket $(DESTDIR)$(UNITDIR)/deskgate.socket
	if [ -f systemd/deskgate-prompt.service ]; then sed 's|@BINDIR@|$(BINDIR)|g' systemd/deskgate-prompt.service > $(DESTDIR)$(UNITDIR)/deskgate-prompt.service; fi
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/
	@echo "installed; enable with: systemctl --user daemon-reload && systemctl --user enable --now deskgate.socket"

uninstall:
	for exe in $(EXECUTABLES); do rm -f $(DESTDIR)$(BINDIR)/$$exe; done
	rm -f $(DESTDIR)$(UNITDIR)/deskgate.service $(DESTDIR)$(UNITDIR)/deskgate.socket $(DESTDIR)$(UNITDIR)/deskgate-prompt.service

# Benchmarks (release build); results are appended to bench-results/ and summarised in docs/benchmarks.md.
bench: build-release
	bash scripts/bench.sh

clean:
	rm -rf .build
