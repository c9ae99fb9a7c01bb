# moat — TLS-terminating proxy for IMAP and POP3.
#
#   make            build build/moat (installs missing Debian packages as
#                   root, builds mbedTLS 3.6 once into build/mbedtls)
#   make test       unit tests (cmocka) and integration tests (real Dovecot,
#                   real clients), mbedTLS's own test suites against moat's
#                   mbedTLS and its crypto driver; then the unit and
#                   integration tests under ASan+UBSan, the pre-auth ones
#                   under valgrind, the unit, TLS and relay tests against
#                   CRYPTO=builtin, and each fuzzer for FUZZ_CI_TIME seconds
#   make run        demo: throwaway Dovecot + moat on 10993/10995
#   make fuzz       build the libFuzzer targets (test/fuzz/, clang) and run
#                   each for FUZZ_TIME seconds (default 60), one after the
#                   other; make fuzz-build only builds them
#   make fuzz-long  each fuzzer for FUZZ_LONG_TIME (1h) or FUZZ_RUNS
#                   executions, growing the kept corpus in test/fuzz/corpus
#   make clean      remove build/ except the cached mbedTLS
#   make static     build/moat-static, linked statically (containers)
#   make man        build/man/moat.8 and moat.ini.5 (from etc/moat.ini)
#   make install    moat, man pages, example config, systemd unit and
#                   sysusers entry under DESTDIR/PREFIX (default /usr/local)
#   make bench      moat against nginx's mail proxy, stunnel and HAProxy
#                   on loopback (scripts/bench/); BENCH_ARGS for options
#
# Options: CRYPTO=builtin (mbedTLS's own crypto only; the default, openssl,
# puts OpenSSL's libcrypto beneath it as a PSA driver, tls/tls_ossl.c),
# MBEDTLS=system (link a distro mbedTLS >= 3.6), CC=clang,
# SANITIZE=1 (ASan+UBSan), CPUFLAGS=-march=native (moat and mbedTLS),
# TLS_IDLE_BUFFERS=keep (idle connections keep their TLS record buffers).

CC       ?= cc
MBEDTLS  ?= bundled
CRYPTO   ?= openssl
BUILD    := build
SANITIZE ?=
CPUFLAGS ?=
# release: idle TLS connections give their record buffers back (a patch to
# the bundled mbedTLS); keep: they hold them, as stock mbedTLS does.
TLS_IDLE_BUFFERS ?= release
ifeq ($(TLS_IDLE_BUFFERS),keep)
  CPUFLAGS += -DMOAT_KEEP_IDLE_BUFFERS
endif

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror \
               -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
               -Wno-unused-parameter -fno-strict-aliasing $(CPUFLAGS)
INCLUDES    := -Iproxy -Itls -Iprotocols
LDLIBS       = -luv -linih -lpthread $(CRYPTO_LIBS)

# The crypto beneath mbedTLS: each kind has an mbedTLS build of its own.
ifeq ($(CRYPTO),openssl)
  CRYPTO_CFLAGS := -DMOAT_CRYPTO_OPENSSL
  CRYPTO_LIBS   := -lcrypto
  CRYPTO_STATIC := -l:libcrypto.a -ldl
  CRYPTO_DRIVER := tls/tls_ossl.c
  MBEDTLS_DIR   := build/mbedtls
else ifeq ($(CRYPTO),builtin)
  CRYPTO_CFLAGS :=
  CRYPTO_LIBS   :=
  CRYPTO_STATIC :=
  CRYPTO_DRIVER :=
  MBEDTLS_DIR   := build/mbedtls-builtin
else
  $(error CRYPTO must be openssl or builtin, not '$(CRYPTO)')
endif

ifeq ($(MBEDTLS),system)
  MBEDTLS_CFLAGS :=
  MBEDTLS_LIBS   := -lmbedtls -lmbedx509 -lmbedcrypto
  MBEDTLS_DEP    :=
  CRYPTO_CFLAGS  :=
  CRYPTO_LIBS    :=
  CRYPTO_STATIC  :=
  CRYPTO_DRIVER  :=
else
  MBEDTLS_CFLAGS := -I$(MBEDTLS_DIR)/include -DMBEDTLS_CONFIG_FILE='"moat_mbedtls_config.h"' \
                    -DMOAT_MBEDTLS_BUNDLED $(CRYPTO_CFLAGS)
  MBEDTLS_LIBS   := $(MBEDTLS_DIR)/lib/libmbedtls.a $(MBEDTLS_DIR)/lib/libmbedx509.a \
                    $(MBEDTLS_DIR)/lib/libmbedcrypto.a
  MBEDTLS_DEP    := $(MBEDTLS_DIR)/stamp
endif

ifeq ($(SANITIZE),1)
  CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer \
                 -fno-sanitize-recover=undefined
  LDFLAGS     += -fsanitize=address,undefined
endif

CFLAGS  ?=
CFLAGS  += $(CFLAGS_BASE)
OBJDIR  := $(BUILD)/obj

# Every module but main.c goes into a static library the unit tests link.
# (tls/tls_ossl.c is mbedTLS's driver: built into libmbedcrypto.a)
SRCS     := $(filter-out tls/tls_ossl.c,$(wildcard proxy/*.c tls/*.c protocols/*.c))
LIB_SRCS := $(filter-out proxy/main.c,$(SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(OBJDIR)/%.o)
MAIN_OBJ := $(OBJDIR)/proxy/main.o
LIBMOAT  := $(BUILD)/libmoat.a

UNIT_SRCS := $(wildcard test/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(BUILD)/test/%)

DEPS_STAMP := $(BUILD)/.deps-build
TDEPS_STAMP := $(BUILD)/.deps-test

.PHONY: all deps test unit integration run clean distclean test-asan test-valgrind test-builtin \
        mbedtls-tests \
        static man install uninstall bench bench-build
all: $(BUILD)/moat

# Debian packages: checked on every make (fast when all are present).
deps:
	@scripts/deps.sh build
$(DEPS_STAMP): scripts/deps.sh
	@scripts/deps.sh build
	@mkdir -p $(BUILD) && touch $@

# One apt at a time: each set waits for the build set (make -j).
$(TDEPS_STAMP): scripts/deps.sh | $(DEPS_STAMP)
	@scripts/deps.sh test
	@mkdir -p $(BUILD) && touch $@

$(MBEDTLS_DIR)/stamp: tls/moat_mbedtls_config.h scripts/mbedtls.sh $(wildcard tls/patches/*.patch) \
                      $(CRYPTO_DRIVER) $(CRYPTO_DRIVER:.c=.h) | $(DEPS_STAMP)
	@MBEDTLS_CFLAGS="$(CPUFLAGS) $(CRYPTO_CFLAGS)" MBEDTLS_DRIVER="$(CRYPTO_DRIVER)" \
	    scripts/mbedtls.sh $(MBEDTLS_DIR) tls/moat_mbedtls_config.h

$(OBJDIR)/%.o: %.c $(MBEDTLS_DEP) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INCLUDES) $(MBEDTLS_CFLAGS) -MMD -MP -c $< -o $@

$(LIBMOAT): $(LIB_OBJS)
	@rm -f $@
	@echo "  AR      $@"
	@ar rcs $@ $^

$(BUILD)/moat: $(MAIN_OBJ) $(LIBMOAT)
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(MBEDTLS_LIBS) $(LDLIBS)

# One binary with no shared libraries (glibc's NSS aside: name users by
# number there), for an empty container image.
static: $(BUILD)/moat-static
$(BUILD)/moat-static: $(MAIN_OBJ) $(LIBMOAT)
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS) -static -o $@ $^ $(MBEDTLS_LIBS) -l:libuv_a.a -l:libinih.a \
	    $(CRYPTO_STATIC) -lpthread -ldl 2>&1 | grep -v -e "statically linked applications" \
	    -e "(proc.o): in function" -e "libcrypto.a(.*): in function" \
	    || true
	@test -x $@

# Benchmark: a C load generator and the raw mbedTLS ceiling, both linked
# with the same mbedTLS as moat; scripts/bench/bench.py runs everything.
BENCH_DIR := $(BUILD)/bench
BENCH_BINS := $(BENCH_DIR)/loadgen $(BENCH_DIR)/tlsraw
BDEPS_STAMP := $(BUILD)/.deps-bench
BENCH_ARGS ?=
$(BDEPS_STAMP): scripts/deps.sh | $(TDEPS_STAMP)
	@scripts/deps.sh bench
	@mkdir -p $(BUILD) && touch $@
$(BENCH_DIR)/%: scripts/bench/%.c $(MBEDTLS_DEP) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INCLUDES) $(MBEDTLS_CFLAGS) -o $@ $< $(LIBMOAT) $(MBEDTLS_LIBS) $(LDLIBS) \
	    $(LDFLAGS)
$(BENCH_DIR)/tlsraw: $(LIBMOAT)
bench-build: $(BUILD)/moat $(BENCH_BINS)
bench: bench-build | $(BDEPS_STAMP) $(TDEPS_STAMP)
	python3 scripts/bench/bench.py $(BENCH_ARGS)

# Manual pages: moat(8) from etc/moat.8, moat.ini(5) built from the
# documented example etc/moat.ini.
VERSION := $(shell sed -n 's/.*MOAT_VERSION "\(.*\)".*/\1/p' proxy/version.h)
MANPAGES := $(BUILD)/man/moat.8 $(BUILD)/man/moat.ini.5
man: $(MANPAGES)
$(BUILD)/man/moat.8: etc/moat.8 proxy/version.h
	@mkdir -p $(dir $@)
	@sed 's/@VERSION@/$(VERSION)/' $< > $@
$(BUILD)/man/moat.ini.5: etc/moat.ini scripts/mkman.sh proxy/version.h
	@mkdir -p $(dir $@)
	@scripts/mkman.sh etc/moat.ini $(VERSION) > $@

# make install [PREFIX=/usr/local] [DESTDIR=...]: the binary, manual
# pages, the example configuration (and moat.ini itself when there is
# none yet), the systemd unit and a sysusers.d entry for its user.
PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
install: $(BUILD)/moat $(MANPAGES)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(SYSCONFDIR)/moat $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 755 $(BUILD)/moat $(DESTDIR)$(SBINDIR)/moat
	install -m 644 $(BUILD)/man/moat.8 $(DESTDIR)$(MANDIR)/man8/moat.8
	install -m 644 $(BUILD)/man/moat.ini.5 $(DESTDIR)$(MANDIR)/man5/moat.ini.5
	install -m 644 etc/moat.ini $(DESTDIR)$(SYSCONFDIR)/moat/moat.ini.example
	test -e $(DESTDIR)$(SYSCONFDIR)/moat/moat.ini || \
	    install -m 644 etc/moat.ini $(DESTDIR)$(SYSCONFDIR)/moat/moat.ini
	sed -e 's#@SBINDIR@#$(SBINDIR)#g' -e 's#@SYSCONFDIR@#$(SYSCONFDIR)#g' etc/moat.service \
	    > $(DESTDIR)$(UNITDIR)/moat.service
	chmod 644 $(DESTDIR)$(UNITDIR)/moat.service
	install -m 644 etc/moat.sysusers $(DESTDIR)$(SYSUSERSDIR)/moat.conf

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/moat $(DESTDIR)$(MANDIR)/man8/moat.8 \
	    $(DESTDIR)$(MANDIR)/man5/moat.ini.5 $(DESTDIR)$(SYSCONFDIR)/moat/moat.ini.example \
	    $(DESTDIR)$(UNITDIR)/moat.service $(DESTDIR)$(SYSUSERSDIR)/moat.conf

$(BUILD)/test/%: test/unit/%.c $(LIBMOAT) | $(TDEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INCLUDES) $(MBEDTLS_CFLAGS) -Itest/unit -o $@ $< $(LIBMOAT) \
	    $(MBEDTLS_LIBS) $(LDLIBS) -lcmocka $(LDFLAGS)

# Tests: deps for testing (Dovecot, curl, ...) first, then unit, then
# integration. Unit tests print cmocka's summary; integration prints
# "N passed, N failed". Then the whole suite again against an ASan+UBSan
# build (build/asan, clang), the pre-auth integration tests with moat
# under valgrind, and every fuzzer briefly.
FUZZ_CI_TIME ?= 60
test: unit integration mbedtls-tests test-asan test-valgrind test-builtin
	@$(MAKE) --no-print-directory fuzz FUZZ_TIME=$(FUZZ_CI_TIME)

# mbedTLS's own test suites (PSA, AEAD, ECC, RSA, PK, X.509, SSL) built
# against the library moat links, driver included; it fails when a driver
# entry point is never taken.
MBEDTLS_TESTS_DIR := $(BUILD)/mbedtls-tests$(if $(CRYPTO_DRIVER),,-builtin)
mbedtls-tests: $(MBEDTLS_DIR)/stamp | $(DEPS_STAMP)
	@MBEDTLS_CFLAGS="$(CPUFLAGS) $(CRYPTO_CFLAGS)" MBEDTLS_DRIVER="$(CRYPTO_DRIVER)" \
	    scripts/mbedtls-tests.sh $(MBEDTLS_TESTS_DIR)

# The pure-mbedTLS build (CRYPTO=builtin, build/builtin): the unit tests
# and the TLS, relay and interop integration tests, which cover every
# suite, group and certificate type, resumption and bulk relay.
test-builtin: | $(TDEPS_STAMP)
	@$(MAKE) --no-print-directory BUILD=build/builtin CRYPTO=builtin unit build/builtin/moat
	MOAT=build/builtin/moat MOAT_CRYPTO=builtin python3 test/integration/run.py test_tls. \
	    test_relay. test_interop.

test-asan: | $(TDEPS_STAMP)
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=1 CC=clang unit
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=1 CC=clang build/asan/moat
	MOAT=build/asan/moat python3 test/integration/run.py

VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=definite,indirect --num-callers=30
test-valgrind: $(BUILD)/moat | $(TDEPS_STAMP)
	MOAT_TIMEOUT_SCALE=5 MOAT_WRAPPER="$(VALGRIND)" python3 test/integration/run.py \
	    test_imap. test_pop3.

unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do echo "== $$t"; $$t || fail=1; done; exit $$fail

integration: $(BUILD)/moat | $(TDEPS_STAMP)
	python3 test/integration/run.py

run: $(BUILD)/moat
	@scripts/deps.sh run
	scripts/demo.sh

# Fuzzing: libFuzzer targets, each linked with the sources it exercises
# compiled by clang with the same sanitizers and coverage (not libmoat.a,
# which is gcc's and holds libuv/mbedTLS code). scripts/fuzz.sh runs them
# on copies of the seed corpora (build/fuzz/corpus-TARGET, kept between
# runs), prints one line per target and fails on any crash, leak, timeout
# or out-of-memory; the input is saved in build/fuzz/artifacts/.
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 60
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -Wall -Wextra \
                -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
                -Wno-unused-parameter -fno-strict-aliasing \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_TARGETS := fuzz_imap_parse fuzz_pop3_parse fuzz_sasl fuzz_cfg fuzz_preauth fuzz_proxyp \
                fuzz_route
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%)
FDEPS_STAMP  := $(BUILD)/.deps-fuzz

fuzz_imap_parse_SRCS := protocols/imap_parse.c
fuzz_pop3_parse_SRCS := protocols/pop3_parse.c
fuzz_sasl_SRCS       := protocols/sasl.c
fuzz_cfg_SRCS        := proxy/cfg.c tls/tls_names.c
fuzz_cfg_LIBS        := -linih
fuzz_preauth_SRCS    := $(wildcard protocols/*.c)
fuzz_proxyp_SRCS     := protocols/proxyp.c
fuzz_route_SRCS      := proxy/route.c

.PHONY: fuzz fuzz-build fuzz-long
fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@FUZZ_TIME=$(FUZZ_TIME) scripts/fuzz.sh $(FUZZ_DIR) $(FUZZ_TARGETS)

# Not in CI: each fuzzer for FUZZ_LONG_TIME seconds (default 1h) or
# FUZZ_RUNS executions, whichever comes first, on the kept corpus under
# test/fuzz/corpus/, which the run grows (coverage-minimized); commit it.
FUZZ_LONG_TIME ?= 3600
FUZZ_RUNS      ?=
fuzz-long: $(FUZZ_BINS)
	@FUZZ_TIME=$(FUZZ_LONG_TIME) FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_KEEP=1 \
	    scripts/fuzz.sh $(FUZZ_DIR) $(FUZZ_TARGETS)

$(FDEPS_STAMP): scripts/deps.sh | $(DEPS_STAMP)
	@scripts/deps.sh fuzz
	@mkdir -p $(BUILD) && touch $@

# Coverage for libFuzzer in every object; its main() only in the link.
$(FUZZ_DIR)/obj/%.o: %.c | $(FDEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(INCLUDES) -Itest/fuzz -MMD -MP \
	    -c $< -o $@

define fuzz_link
$(FUZZ_DIR)/$(1): $(FUZZ_DIR)/obj/test/fuzz/$(1).o $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$($(1)_SRCS))
	@echo "  LINK    $$@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $$@ $$^ $($(1)_LIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_link,$(t))))

-include $(wildcard $(FUZZ_DIR)/obj/*/*.d $(FUZZ_DIR)/obj/*/*/*.d)

clean:
	rm -rf $(OBJDIR) $(BUILD)/test $(BUILD)/moat $(BUILD)/moat-static $(BUILD)/man $(LIBMOAT) \
	    $(BUILD)/.deps-* $(FUZZ_DIR)

distclean:
	rm -rf $(BUILD)

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d)
