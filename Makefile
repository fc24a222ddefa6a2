# audex: `make` builds, `make run` starts everything, `make test` tests.
# Every target that needs packages installs what is missing first
# (scripts/setup.sh); the README's "Prerequisites" says what a machine
# needs beforehand, and `make fresh-check` proves it.

SHELL        := /bin/bash
BUILD        ?= build
CC           ?= gcc
FUZZ_SECONDS ?= 15

LIB_PKGS     := jansson libargon2 libcrypto libbson-1.0
WORKER_PKGS  := libavformat libavcodec libavutil libswresample lame \
                libmongoc-1.0 libbson-1.0 hiredis libcurl libmicrohttpd \
                $(LIB_PKGS)

WARN         := -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS       ?= -g -O2
SAN          ?=
ALL_CFLAGS    = -std=gnu99 $(WARN) $(CFLAGS) $(SAN) -fPIC \
                -Ilib -Istore -Iworkers/common

pkg_cflags    = $(shell pkg-config --cflags $(1) 2>/dev/null)
pkg_libs      = $(shell pkg-config --libs $(1) 2>/dev/null)

LIB_SRCS     := $(wildcard lib/*.c)
LIB_OBJS     := $(LIB_SRCS:lib/%.c=$(BUILD)/lib/%.o)
LIB_A        := $(BUILD)/lib/libaudex.a

# the store layer (MongoDB), shared by the module and the workers
STORE_SRCS   := $(wildcard store/*.c)

COMMON_SRCS  := $(wildcard workers/common/*.c) $(STORE_SRCS)
COMMON_HDRS  := $(wildcard workers/common/*.h lib/*.h store/*.h)
WORKERS      := $(filter-out common,$(notdir $(patsubst %/main.c,%,\
                    $(wildcard workers/*/main.c))))
WORKER_BINS  := $(WORKERS:%=$(BUILD)/bin/audex-%)

UNIT_SRCS    := $(wildcard t/unit/test_*.c)
UNIT_BINS    := $(UNIT_SRCS:t/unit/%.c=$(BUILD)/unit/%)

FUZZ_SRCS    := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRCS:fuzz/%.c=$(BUILD)/fuzz/%)

.PHONY: all deps module workers unit style prove smoke fuzz asan test web \
        test-steps fresh-check run stop status clean

all: deps module workers

deps:
	@scripts/setup.sh

module: deps
	@scripts/build-module.sh $(BUILD)

workers: $(WORKER_BINS)

$(BUILD)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(call pkg_cflags,$(LIB_PKGS)) -c -o $@ $<

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

.SECONDEXPANSION:
$(BUILD)/bin/audex-%: $$(wildcard workers/%/*.c workers/%/*.h) \
                      $(COMMON_SRCS) $(COMMON_HDRS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iworkers/$* $(call pkg_cflags,$(WORKER_PKGS)) \
	    -o $@ $(filter %.c,$^) $(LIB_A) \
	    $(call pkg_libs,$(WORKER_PKGS)) -lm -lpthread

$(BUILD)/unit/%: t/unit/%.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(call pkg_cflags,$(LIB_PKGS) cmocka) -o $@ $< \
	    $(LIB_A) $(call pkg_libs,$(LIB_PKGS) cmocka) -lm -lpthread

# the store layer's test talks to a server (t/store.t gives it one)
$(BUILD)/unit/test_store: t/unit/test_store.c $(STORE_SRCS) \
                          $(wildcard store/*.h) lib/audex_schema.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(call pkg_cflags,libmongoc-1.0 libcrypto cmocka) \
	    -o $@ $< $(STORE_SRCS) \
	    $(call pkg_libs,libmongoc-1.0 libcrypto cmocka)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

$(BUILD)/fuzz/%: fuzz/%.c $(LIB_SRCS) $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Ilib \
	    $(call pkg_cflags,$(LIB_PKGS)) -o $@ $< $(LIB_SRCS) \
	    $(call pkg_libs,$(LIB_PKGS))

# each target for FUZZ_SECONDS on a scratch copy of its seed corpus
fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do \
	    n=$${f##*/fuzz_}; c=$(BUILD)/fuzz/corpus-$$n; \
	    mkdir -p $$c; cp -r fuzz/corpus/$$n/. $$c/ 2>/dev/null || true; \
	    echo "== $$f ($(FUZZ_SECONDS) s)"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -max_len=9000 -print_final_stats=0 \
	        -artifact_prefix=$(BUILD)/fuzz/ $$c 2>&1 | tail -n 2; \
	    test $${PIPESTATUS[0]} -eq 0; \
	done

style:
	@scripts/style-check.sh

# the page's and the API docs' npm packages, into build/web
web:
	@scripts/install-web.sh

prove: all web
	prove -r t/

smoke: all
	@scripts/smoke.sh

# workers and unit tests with AddressSanitizer and UBSan, into build/asan;
# then the converter's media set, its segment-parallel encoding and both
# workers' HTTP server through the sanitized workers (any report makes the
# run fail: halt_on_error, exit codes checked)
asan: deps
	$(MAKE) BUILD=$(BUILD)/asan CFLAGS="-g -O1" \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer \
	         -fno-sanitize-recover=all" workers unit
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:exitcode=99 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	AUDEX_CONVERTER_BIN=$(BUILD)/asan/bin/audex-converter \
	AUDEX_NOTIFIER_BIN=$(BUILD)/asan/bin/audex-notifier \
	    prove t/converter_convert.t t/converter_parallel.t t/worker_http.t

# everything, then a check that no test left a process running
test:
	@scripts/leftovers.sh mark $(BUILD)/test.mark
	@$(MAKE) --no-print-directory test-steps
	@scripts/leftovers.sh check $(BUILD)/test.mark

test-steps: all style unit fuzz asan smoke prove

# a clean Debian 12 root runs `make test` on a clone of HEAD (slow: see
# the README, "Checking a fresh machine")
fresh-check:
	@scripts/fresh-check.sh

run: all web
	@scripts/run.sh start

stop:
	@scripts/run.sh stop

status:
	@scripts/run.sh status

clean:
	rm -rf $(BUILD)
