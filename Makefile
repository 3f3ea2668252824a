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
ifeq ($(filter clean help deps test test-cluster demo fashion-full valgrind fuzz,$(MAKECMDGOALS)),)
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

LIB_SRC  := $(wildcard nn/*.c dataloader/*.c comm/*.c) $(filter-out trainer/main.c,$(wildcard trainer/*.c trainer/*/*.c))
# nn/kernels/ is compiled once per instruction set; nn/kernels.c picks one at run time
KERN_SRC := $(wildcard nn/kernels/*.c)
KERN_OBJ := $(KERN_SRC:%.c=$(BUILD)/%.avx2.o) $(KERN_SRC:%.c=$(BUILD)/%.avx512.o)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(KERN_OBJ)
ISA_avx2   := -mavx2 -mfma -ffp-contract=fast
ISA_avx512 := -mavx2 -mfma -mprfchw -mavx512f -mavx512bw -mavx512vl -mavx512dq -mprefer-vector-width=512 -ffp-contract=fast
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

# The full Fashion-MNIST recipe (about 1 h 30 min on 2 cores; docs/fashion-mnist.md).
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
	@echo "make valgrind     a short 2-rank training run under valgrind memcheck (Open MPI's reports suppressed)"
	@echo "make fuzz         run every fuzz target FUZZ_SECONDS (60) under nice; FUZZ_TARGETS=\"ckpt npy\" for some"
	@echo "make clean        remove build/ and bin/"

clean:
	rm -rf build bin

# ---- fuzzing (tests/fuzz/, docs/reliability.md) ----
# One libFuzzer target per parser, each built with clang from only the sources
# it needs. `make test` replays every kept input through the same targets
# built with $(CC) and tests/fuzz/replay.c as main (tests/test_fuzz_replay.sh).
FUZZ_TARGETS := jpeg png ckpt shard labels classes index_cache npy
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang-14
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 $(ARCH) -I. $(shell pkg-config --cflags libpng libjpeg libzstd 2>/dev/null) \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_LIBS    := $(shell pkg-config --libs libpng libjpeg libzstd 2>/dev/null) -lpthread -lm
# nn/sgd.c (the optimiser state a checkpoint loads into) calls the SIMD tables,
# so the checkpoint targets link nn/kernels/ built once per instruction set
FUZZ_KERN_OBJ := $(KERN_SRC:%.c=build/fuzz/obj/%.avx2.o) $(KERN_SRC:%.c=build/fuzz/obj/%.avx512.o)
build/fuzz/obj/nn/kernels/%.avx2.o: nn/kernels/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(ISA_avx2) -c -o $@ $<
build/fuzz/obj/nn/kernels/%.avx512.o: nn/kernels/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(ISA_avx512) -c -o $@ $<
fuzz_image   := tests/fuzz/fuzz_image.c dataloader/image.c dataloader/loader.c dataloader/sampler.c \
                dataloader/dataset.c dataloader/shard.c dataloader/atomic_file.c dataloader/crops.c
fuzz_data    := tests/fuzz/fuzz_dataset.c dataloader/dataset.c dataloader/shard.c dataloader/atomic_file.c
fuzz_ckpt    := $(addprefix trainer/ckpt/,format.c meta.c write.c read.c dir.c hash.c npy.c) dataloader/atomic_file.c \
                nn/sgd.c nn/parallel.c nn/kernels.c \
                $(FUZZ_KERN_OBJ)
fuzz_src_jpeg        := tests/fuzz/fuzz_jpeg.c $(fuzz_image)
fuzz_src_png         := tests/fuzz/fuzz_png.c $(fuzz_image)
fuzz_src_ckpt        := tests/fuzz/fuzz_ckpt.c $(fuzz_ckpt)
fuzz_src_npy         := tests/fuzz/fuzz_npy.c $(fuzz_ckpt)
fuzz_src_shard       := tests/fuzz/fuzz_shard.c $(fuzz_data)
fuzz_src_labels      := tests/fuzz/fuzz_labels.c $(fuzz_data)
fuzz_src_classes     := tests/fuzz/fuzz_classes.c $(fuzz_data)
fuzz_src_index_cache := tests/fuzz/fuzz_index_cache.c tests/fuzz/fuzz_index_tree.c $(fuzz_data)
FUZZ_BIN        := $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
FUZZ_REPLAY_BIN := $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/replay_%)

define fuzz_rules
build/fuzz/fuzz_$(1): tests/fuzz/fuzz_util.c tests/fuzz/fuzz_entry.c $$(fuzz_src_$(1)) $$(wildcard tests/fuzz/*.h)
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -o $$@ $$(filter %.c %.o,$$^) $$(FUZZ_LIBS)
$(BUILD)/tests/fuzz/replay_$(1): $$(patsubst %.c,$(BUILD)/%.o,tests/fuzz/replay.c tests/fuzz/fuzz_util.c tests/fuzz/fuzz_entry.c \
                                 $$(filter tests/%,$$(fuzz_src_$(1)))) $$(LIB_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_rules,$(t))))

# the seed corpora's generator (tests/fuzz/make_seeds.sh)
$(BUILD)/tests/fuzz/seed_gen: $(patsubst %.c,$(BUILD)/%.o,tests/fuzz/seed_gen.c tests/fuzz/fuzz_util.c \
                              tests/fuzz/fuzz_index_tree.c) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

run-tests: $(FUZZ_REPLAY_BIN)

# A short 2-rank training run under valgrind memcheck (tests/valgrind/run.sh).
.PHONY: valgrind
valgrind:
	@scripts/install-deps.sh --valgrind
	@$(MAKE) --no-print-directory $(BIN) $(BUILD)/tests/helper_gen_dataset
	@GOOGLENET_BIN=$(BIN) TEST_BUILD=$(BUILD) tests/valgrind/run.sh

.PHONY: fuzz
fuzz:
	@scripts/install-deps.sh --fuzz
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs $(FUZZ_CC) and its fuzzer runtime (FUZZ_CC=clang-14 is what scripts/install-deps.sh --fuzz installs)"; exit 1; }
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" tests/fuzz/run.sh

.SECONDARY:
-include $(shell find build -name '*.d' 2>/dev/null)

# docs/googlenet.1, the flag reference, written from the commands' own flag
# tables; tests/test_manpage.sh fails while the committed page differs.
.PHONY: man
man: $(BIN)
	@$(BIN) help --man >docs/googlenet.1.tmp && mv docs/googlenet.1.tmp docs/googlenet.1 && echo "wrote docs/googlenet.1"
