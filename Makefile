# deskgate — build, test, run, install, benchmark.
# `make run` and `make test` do all set-up on a fresh Debian 12 machine with a Swift 6 toolchain.

SWIFT        ?= swift
PREFIX       ?= /usr/local
DESTDIR      ?=
BINDIR       := $(PREFIX)/bin
UNITDIR      := $(PREFIX)/lib/systemd/user
DOCDIR       := $(PREFIX)/share/doc/deskgate
MANDIR       := $(PREFIX)/share/man/man1
BASHCOMPDIR  := $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR   := $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR  := $(PREFIX)/share/fish/vendor_completions.d
# Where `make install` takes the binaries from. Unset: a release build, made first. Set, the
# binaries built there are installed as they are (the test suite installs its debug build).
INSTALL_FROM ?=
FROM         := $(or $(INSTALL_FROM),.build/release)
CONFIG       ?= debug
BIN          := .build/$(CONFIG)
EXECUTABLES  := deskgated deskgate deskgate-prompt deskgate-mcp
DEPS_STAMP   := .build/.deps-ok

.PHONY: all deps build build-release test test-unit soak run install uninstall man bench clean reproducible-check

all: build

# System packages (apt-get, via sudo when not root; skips what is installed) and the
# Python virtualenv used by the MCP client tests.
deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/deps.sh
	bash scripts/deps.sh
	@mkdir -p .build && touch $@

build: deps
	$(SWIFT) build -c $(CONFIG)

# Release binaries, with the flags that make them reproducible (scripts/release-build.sh;
# SOURCE_DATE_EPOCH defaults to the commit's time on a clean tree). `make install` and
# `make bench` build through it; `make build`, `make run` and `make test` are debug builds.
build-release: deps
	SWIFT=$(SWIFT) bash scripts/release-build.sh

# Every test, the AT-SPI ones against real apps on a private headless desktop.
test: deps
	$(SWIFT) build --build-tests
	bash scripts/headless-desktop.sh --app qt5 --app gtk4 --app gtk3 -- bash scripts/run-tests.sh $(TEST_ARGS)

# The soak (docs/benchmarks.md, "Soak"): the same four tests `make test` runs short, at full size
# (DESKGATE_SOAK=1): 1,000,000 fuzzed lines, 10,000 connect/disconnect cycles, 200 kill -9
# cycles, 50 clients × 20 rounds with a frozen app. Each prints its figures on a `SOAK` line.
SOAK_TESTS := SocketFuzzTests/fuzz|RobustnessTests/fdLeak|AuditedDaemonTests/crashInjection|FrozenAppLoadTests
soak: deps
	$(SWIFT) build --build-tests
	bash -o pipefail -c "bash scripts/headless-desktop.sh --app gtk3 -- env DESKGATE_SOAK=1 \
		$(SWIFT) test --skip-build --no-parallel --filter '$(SOAK_TESTS)' $(TEST_ARGS) 2>&1 | tee .build/soak.log"
	@grep '^SOAK ' .build/soak.log

# Pure-logic and socket tests only (no desktop needed).
test-unit: deps
	$(SWIFT) test --skip JSONRPCFuzzLong $(TEST_ARGS)

# Two release builds of HEAD (scripts/release-build.sh) from clean clones in two directories,
# SOURCE_DATE_EPOCH = the commit's time; their binaries' SHA-256 compared (docs/supply-chain.md).
reproducible-check: deps
	bash scripts/reproducible-check.sh

# The daemon: against the real session when there is one, else inside a headless desktop with a demo app.
run: build
	bash scripts/run-demo.sh

# Binaries, user units, docs, the man page and bash/zsh/fish completions; DESTDIR= stages it
# (no root needed). The completion scripts come from the binary being installed.
install: $(if $(INSTALL_FROM),,build-release)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(MANDIR) \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	for exe in $(EXECUTABLES); do install -m 0755 $(FROM)/$$exe $(DESTDIR)$(BINDIR)/$$exe; done
	sed 's|@BINDIR@|$(BINDIR)|g' systemd/deskgate.service > $(DESTDIR)$(UNITDIR)/deskgate.service
	install -m 0644 systemd/deskgate.socket $(DESTDIR)$(UNITDIR)/deskgate.socket
	if [ -f systemd/deskgate-prompt.service ]; then sed 's|@BINDIR@|$(BINDIR)|g' systemd/deskgate-prompt.service > $(DESTDIR)$(UNITDIR)/deskgate-prompt.service; fi
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/
	# What was installed, for checking later (docs/supply-chain.md): the binaries' SHA-256
	# (`cd BINDIR && sha256sum -c DOCDIR/SHA256SUMS`) and their build provenance.
	cd $(DESTDIR)$(BINDIR) && sha256sum $(EXECUTABLES) > $(DESTDIR)$(DOCDIR)/SHA256SUMS
	$(DESTDIR)$(BINDIR)/deskgated --version > $(DESTDIR)$(DOCDIR)/BUILD-INFO
	chmod 0644 $(DESTDIR)$(DOCDIR)/SHA256SUMS $(DESTDIR)$(DOCDIR)/BUILD-INFO
	install -m 0644 docs/deskgate.1 $(DESTDIR)$(MANDIR)/deskgate.1
	$(FROM)/deskgate --generate-completion-script bash > $(DESTDIR)$(BASHCOMPDIR)/deskgate
	$(FROM)/deskgate --generate-completion-script zsh > $(DESTDIR)$(ZSHCOMPDIR)/_deskgate
	$(FROM)/deskgate --generate-completion-script fish > $(DESTDIR)$(FISHCOMPDIR)/deskgate.fish
	chmod 0644 $(DESTDIR)$(BASHCOMPDIR)/deskgate $(DESTDIR)$(ZSHCOMPDIR)/_deskgate $(DESTDIR)$(FISHCOMPDIR)/deskgate.fish
	@echo "installed; enable with: systemctl --user daemon-reload && systemctl --user enable --now deskgate.socket"

uninstall:
	for exe in $(EXECUTABLES); do rm -f $(DESTDIR)$(BINDIR)/$$exe; done
	rm -f $(DESTDIR)$(UNITDIR)/deskgate.service $(DESTDIR)$(UNITDIR)/deskgate.socket $(DESTDIR)$(UNITDIR)/deskgate-prompt.service
	rm -f $(DESTDIR)$(MANDIR)/deskgate.1
	rm -f $(DESTDIR)$(BASHCOMPDIR)/deskgate $(DESTDIR)$(ZSHCOMPDIR)/_deskgate $(DESTDIR)$(FISHCOMPDIR)/deskgate.fish
	rm -f $(DESTDIR)$(DOCDIR)/*.md $(DESTDIR)$(DOCDIR)/SHA256SUMS $(DESTDIR)$(DOCDIR)/BUILD-INFO
	if [ -d $(DESTDIR)$(DOCDIR) ]; then rmdir --ignore-fail-on-non-empty $(DESTDIR)$(DOCDIR); fi

# docs/deskgate.1 from the CLI's command definitions (swift-argument-parser's generate-manual
# plugin, plus the sections it cannot know); run after changing a command, commit the result.
man: build
	CONFIG=$(CONFIG) bash scripts/man-page.sh

# Benchmarks (release build); results are appended to bench-results/ and summarised in docs/benchmarks.md.
bench: build-release
	bash scripts/bench.sh

clean:
	rm -rf .build
