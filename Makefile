# moat — TLS-terminating proxy for IMAP and POP3.
#
#   make            build build/moat (installs missing Debian packages as
#                   root, builds mbedTLS 3.6 once into build/mbedtls)
#   make test       unit tests (cmocka) and integration tests (real Dovecot,
#                   real clients)
#   make run        demo: throwaway Dovecot + moat on 10993/10995
#   make clean      remove build/ except the cached mbedTLS
#
# Options: MBEDTLS=system (link a distro mbedTLS >= 3.6), CC=clang,
# SANITIZE=1 (ASan+UBSan), CPUFLAGS=-march=native (moat and mbedTLS).

CC       ?= cc
MBEDTLS  ?= bundled
BUILD    := build
SANITIZE ?=
CPUFLAGS ?=

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror \
               -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
               -Wno-unused-parameter -fno-strict-aliasing $(CPUFLAGS)
INCLUDES    := -Iproxy -Itls -Iprotocols
LDLIBS      := -luv -linih -lpthread

ifeq ($(MBEDTLS),system)
  MBEDTLS_CFLAGS :=
  MBEDTLS_LIBS   := -lmbedtls -lmbedx509 -lmbedcrypto
  MBEDTLS_DEP    :=
else
  MBEDTLS_DIR    := $(BUILD)/mbedtls
  MBEDTLS_CFLAGS := -I$(MBEDTLS_DIR)/include -DMBEDTLS_CONFIG_FILE='"mbedtls_config.h"'
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
SRCS     := $(wildcard proxy/*.c tls/*.c protocols/*.c)
LIB_SRCS := $(filter-out proxy/main.c,$(SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(OBJDIR)/%.o)
MAIN_OBJ := $(OBJDIR)/proxy/main.o
LIBMOAT  := $(BUILD)/libmoat.a

UNIT_SRCS := $(wildcard test/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(BUILD)/test/%)

DEPS_STAMP := $(BUILD)/.deps-build
TDEPS_STAMP := $(BUILD)/.deps-test

.PHONY: all deps test unit integration run clean distclean
all: $(BUILD)/moat

# Debian packages: checked on every make (fast when all are present).
deps:
	@scripts/deps.sh build
$(DEPS_STAMP): scripts/deps.sh
	@scripts/deps.sh build
	@mkdir -p $(BUILD) && touch $@

$(TDEPS_STAMP): scripts/deps.sh
	@scripts/deps.sh test
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/mbedtls/stamp: tls/mbedtls_config.h scripts/mbedtls.sh | $(DEPS_STAMP)
	@CC="$(CC)" MBEDTLS_CFLAGS="$(CPUFLAGS)" scripts/mbedtls.sh $(BUILD)/mbedtls tls/mbedtls_config.h

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

$(BUILD)/test/%: test/unit/%.c $(LIBMOAT) | $(TDEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INCLUDES) $(MBEDTLS_CFLAGS) -Itest/unit -o $@ $< $(LIBMOAT) \
	    $(MBEDTLS_LIBS) $(LDLIBS) -lcmocka $(LDFLAGS)

# Tests: deps for testing (Dovecot, curl, ...) first, then unit, then
# integration. Unit tests print cmocka's summary; integration prints
# "N passed, N failed".
test: unit integration

unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do echo "== $$t"; $$t || fail=1; done; exit $$fail

integration: $(BUILD)/moat | $(TDEPS_STAMP)
	python3 test/integration/run.py

run: $(BUILD)/moat
	@scripts/deps.sh run
	scripts/demo.sh

clean:
	rm -rf $(OBJDIR) $(BUILD)/test $(BUILD)/moat $(LIBMOAT) $(BUILD)/.deps-*

distclean:
	rm -rf $(BUILD)

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d)
