# Builds bin/googlenet and the test suite. `make help` lists the targets.
#
# Dependencies come from Debian packages and are found with pkg-config; a
# missing one is named together with the package that brings it. Run
# scripts/install-deps.sh to install them all.

CC      ?= gcc
# AVX2 + FMA is the baseline the product is tuned for; `make ARCH=-march=native`
# builds for the build machine only (faster on AVX-512 parts, not portable).
ARCH    ?= -mavx2 -mfma
OPT     ?= -O3
SANITIZE ?=

PKGS      := ompi-c openblas libpng libjpeg libzstd
TEST_PKGS := cmocka
deb_ompi-c   := libopenmpi-dev
deb_openblas := libopenblas-dev
deb_libpng   := libpng-dev
deb_libjpeg  := libjpeg62-turbo-dev
deb_libzstd  := libzstd-dev
deb_cmocka   := libcmocka-dev

have = $(shell pkg-config --exists $(1) 2>/dev/null && echo yes)
MISSING      := $(strip $(foreach p,$(PKGS),$(if $(call have,$(p)),,$(p))))
MISSING_TEST := $(strip $(foreach p,$(TEST_PKGS),$(if $(call have,$(p)),,$(p))))
need_deps = $(if $(1),$(error missing $(foreach p,$(1),$(p) (Debian package $(deb_$(p)))); run scripts/install-deps.sh))

# `make test` and `make demo` install what is missing first and then re-enter
# make, so the checks below run after the install.
ifeq ($(filter clean help deps test test-cluster demo fashion-full,$(MAKECMDGOALS)),)
$(call need_deps,$(MISSING))
ifneq ($(filter run-tests,$(MAKECMDGOALS)),)
$(call need_deps,$(MISSING_TEST))
endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers -Wno-format-truncation \
           -g $(OPT) -fno-trapping-math -fno-math-errno $(ARCH) -MMD -MP -I. $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lpthread -lm

comma := ,
ifneq ($(SANITIZE),)
BUILD   := build/san-$(subst $(comma),-,$(SANITIZE))
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDLIBS  += -fsanitize=$(SANITIZE)
BIN     := $(BUILD)/bin/googlenet
else
BUILD   := build/release
BIN     := bin/googlenet
endif

LIB_SRC  := $(wildcard nn/*.c dataloader/*.c comm/*.c) $(filter-out trainer/main.c,$(wildcard trainer/*.c))
# nn/kernels/ is compiled once per instruction set; nn/kernels.c picks one at run time
KERN_SRC := $(wildcard nn/kernels/*.c)
KERN_OBJ := $(KERN_SRC:%.c=$(BUILD)/%.avx2.o) $(KERN_SRC:%.c=$(BUILD)/%.avx512.o)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(KERN_OBJ)
ISA_avx2   := -mavx2 -mfma -ffp-contract=fast
ISA_avx512 := -mavx2 -mfma -mavx512f -mavx512bw -mavx512vl -mavx512dq -mprefer-vector-width=512 -ffp-contract=fast
MAIN_OBJ := $(BUILD)/trainer/main.o
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPER_SRC := $(wildcard tests/helper_*.c)
TEST_HELPER_BIN := $(TEST_HELPER_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test run-tests deps help clean demo fashion-full bench test-cluster
all: $(BIN)

$(BIN): $(MAIN_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# `googlenet --version` names the git revision it was built from; the header
# is rewritten only when the revision changes, so main.o rebuilds only then
$(MAIN_OBJ): CFLAGS += -I$(BUILD)
$(MAIN_OBJ): $(BUILD)/version.h
$(BUILD)/version.h: FORCE
	@mkdir -p $(dir $@); v=$$(git describe --always --dirty 2>/dev/null || echo unknown); \
	 echo "#define GOOGLENET_REVISION \"$$v\"" >$@.tmp; cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
.PHONY: FORCE
FORCE:

$(BUILD)/nn/kernels/%.avx2.o: nn/kernels/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_avx2) -c -o $@ $<

$(BUILD)/nn/kernels/%.avx512.o: nn/kernels/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_avx512) -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

test:
	@scripts/install-deps.sh --test
	@$(MAKE) --no-print-directory run-tests

# Every test binary and every tests/test_*.sh runs; the summary names failures.
run-tests: $(BIN) $(TEST_BIN) $(TEST_HELPER_BIN)
	@GOOGLENET_BIN=$(BIN) TEST_BUILD=$(BUILD) scripts/run-tests.sh $(TEST_BIN) $(wildcard tests/test_*.sh)

# The cluster tests, as root: Open MPI across a virtual multi-host cluster and
# the Slurm scripts on a one-node Slurm (docs/cluster.md). They fail, never
# skip, where the machine cannot make namespaces or start Slurm.
test-cluster:
	@scripts/install-deps.sh --test --cluster
	@$(MAKE) --no-print-directory $(BIN) $(TEST_HELPER_BIN)
	@GOOGLENET_BIN=$(BIN) TEST_BUILD=$(BUILD) scripts/run-tests.sh tests/cluster/test_vcluster.sh cluster/slurm-test.sh

deps:
	@scripts/install-deps.sh

# The README's first command: Fashion-MNIST end to end in about 10 minutes.
demo:
	@scripts/install-deps.sh --demo
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

# The full Fashion-MNIST recipe (hours on 2 cores; docs/fashion-mnist.md).
fashion-full:
	@scripts/install-deps.sh --demo
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh --full

bench: $(BIN)
	$(BIN) bench

help:
	@echo "make              build $(BIN)"
	@echo "make demo         train and evaluate on Fashion-MNIST (installs what is missing)"
	@echo "make fashion-full the full Fashion-MNIST recipe"
	@echo "make test         build and run every test (SANITIZE=address,undefined for sanitizers)"
	@echo "make test-cluster multi-host MPI on a virtual cluster and the Slurm scripts on a local Slurm (root)"
	@echo "make deps         install missing Debian packages (scripts/install-deps.sh)"
	@echo "make clean        remove build/ and bin/"

clean:
	rm -rf build bin

.SECONDARY:
-include $(shell find build -name '*.d' 2>/dev/null)
