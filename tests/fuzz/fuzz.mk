# tests/fuzz/fuzz.mk - the sanitizer build and the fuzzers, included by the
# GNUmakefile.
#
# `make check-sanitize` builds the library, tools and unit tests again in
# build-asan/ with AddressSanitizer and UndefinedBehaviorSanitizer (any
# report stops the process, leaks included) and runs the tests there.
# build-asan/test-env holds what tests/run sets for that build's tests:
# the sanitizer options, and PP_TEST_QUICK=1 (no appliance launches).
#
# `make fuzz` builds the libFuzzer harnesses of tests/fuzz/ with clang into
# build-fuzz/ (the library compiled with the same sanitizers plus coverage)
# and runs each for FUZZ_SECONDS, growing build-fuzz/corpus-NAME from seeds
# that tests/fuzz/make-seeds.sh generates; `make -j3 fuzz` runs them side by
# side.  `make check-fuzz-smoke` runs each for FUZZ_SMOKE_SECONDS from the
# seeds alone and fails on any finding.  tests/fuzz/run.sh prints the summaries.

SANITIZE_O := build-asan
SANITIZE_CC ?= $(CC)
SANITIZE_CFLAGS := -O1 -g -fsanitize=address,undefined \
	-fno-omit-frame-pointer -fno-sanitize-recover=all
SANITIZE_ENV := PP_TEST_QUICK=1 'PP_TEST_CFLAGS=$(SANITIZE_CFLAGS)' \
	ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

FUZZ_O := build-fuzz
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all
# fuzz-open.c reaches every container's parser (pp_open probes the magic);
# it is built once per format, as fuzz-FORMAT-open, so that each grows a
# corpus of its own from that format's seeds (tests/fuzz/make-seeds.sh).
FUZZ_OPEN_FORMATS := xz gz zstd
FUZZ_NAMES := $(filter-out open,$(patsubst tests/fuzz/fuzz-%.c,%,$(wildcard \
	tests/fuzz/fuzz-*.c))) $(FUZZ_OPEN_FORMATS:%=%-open)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_O)/%.o)

.PHONY: check-sanitize sanitize-build check-fuzz-smoke

check-sanitize: sanitize-build
	@tests/run $(SANITIZE_O)

sanitize-build:
	@$(MAKE) --no-print-directory O=$(SANITIZE_O) CC='$(SANITIZE_CC)' \
		CFLAGS='$(SANITIZE_CFLAGS)' all \
		$(UNIT_SRCS:tests/unit/%.c=$(SANITIZE_O)/tests/%) \
		$(EXAMPLE_BINS:$(O)/%=$(SANITIZE_O)/%)
	@printf '%s\n' $(SANITIZE_ENV) >$(SANITIZE_O)/test-env

# Coverage for the library only; the harness links the fuzzer's main.
$(FUZZ_O)/lib/%.o: lib/%.c $(LIB_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(PP_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_O)/fuzz-%: tests/fuzz/fuzz-%.c tests/fuzz/fuzz.h $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(PP_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(FUZZ_LIB_OBJS) $(PP_LIBS)

$(FUZZ_O)/fuzz-%-open: tests/fuzz/fuzz-open.c tests/fuzz/fuzz.h $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(PP_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(FUZZ_LIB_OBJS) $(PP_LIBS)

$(FUZZ_O)/seeds: tests/fuzz/make-seeds.sh $(O)/partpack
	tests/fuzz/make-seeds.sh $(O) $@

fuzz: $(FUZZ_NAMES:%=fuzz-run-%)
fuzz-run-%: $(FUZZ_O)/fuzz-% $(FUZZ_O)/seeds
	@tests/fuzz/run.sh $< $(FUZZ_SECONDS) $(FUZZ_O)/corpus-$* $(FUZZ_O)/seeds/$*

# A fresh corpus each time, so a smoke run means the same thing every time.
check-fuzz-smoke: $(FUZZ_NAMES:%=fuzz-smoke-%)
fuzz-smoke-%: $(FUZZ_O)/fuzz-% $(FUZZ_O)/seeds
	@rm -rf $(FUZZ_O)/smoke-$*
	@tests/fuzz/run.sh $< $(FUZZ_SMOKE_SECONDS) $(FUZZ_O)/smoke-$* $(FUZZ_O)/seeds/$*
