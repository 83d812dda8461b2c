# imgnode: a boring Makefile. `make V=1` shows the commands.
#   all      the daemon, imgnodectl, the plugins, the unit tests and the
#            e2e test programs
#   run      installs missing packages, builds, runs a node on the shipped
#            config with its state under build/run/
#   check    installs what the tests need, builds, runs every test layer
#   bench    the benchmarks (ratios measured in one run; never timed tests)
#   install  DESTDIR, PREFIX honoured
#   lint     clang-format check, cppcheck, banned functions
#   deb      the Debian packages (pkg/deb/Makefile.inc); check runs check-deb
#   check-cluster  three hosts (network namespaces) under faults, every job
#            counted (test/cluster/run.py, root, ~7 min; not in check)
#   bench-cluster  one batch through 1, 2, 3 nodes of that cluster: jobs/s
#            and CPU per job (test/cluster/scale.py, root)
#   check-fresh  make run and make deps from a clean clone in a fresh
#            container (test/fresh/run); check runs it
#   format   rewrites the sources with clang-format
#   fuzz     runs each libFuzzer harness (test/fuzz) for FUZZ_SECONDS
# Our flags come first; the user's CPPFLAGS/CFLAGS/LDFLAGS are appended, so
# dpkg-buildflags works. WERROR=1 adds -Werror, SAN=1 builds with ASan+UBSan,
# FUZZ=1 with clang, libFuzzer, ASan and UBSan (in $(BUILD)/fuzz).
BUILD ?= build
CC ?= cc
PREFIX ?= /usr/local
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
MULTIARCH := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null)
PLUGINDIR ?= $(PREFIX)/lib/$(MULTIARCH)/imgnode/plugins
WWWDIR ?= $(PREFIX)/share/imgnode/www
# The upload page: static files, no build step ([ingress] www_dir).
WWW_FILES := $(wildcard www/*.html www/*.css www/*.js www/*.svg)
VERSION := $(shell cat VERSION)

WARN := -Wall -Wextra
ifeq ($(WERROR),1)
WARN += -Werror
endif
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
override BUILD := $(BUILD)/san
endif
# FUZZ=1: the libFuzzer harnesses (test/fuzz) and everything they link, in
# $(BUILD)/fuzz with clang, ASan and UBSan (an undefined behaviour aborts).
ifeq ($(FUZZ),1)
override CC := clang
SANFLAGS := -fsanitize=address,undefined,fuzzer-no-link \
	-fno-sanitize-recover=all -fno-omit-frame-pointer
override BUILD := $(BUILD)/fuzz
endif
ifneq ($(V),1)
Q := @
endif

# Hardening: stack protector, stack clash and control-flow protection where
# the compiler has them, PIE executables, full RELRO. _FORTIFY_SOURCE needs
# -O2 and is left out under the sanitizers (ASan intercepts the same calls)
# and when the user's flags set it already (dpkg-buildflags does).
cc-option = $(shell $(CC) -Werror $(1) -E -x c /dev/null >/dev/null 2>&1 && echo $(1))
HARDEN := -fstack-protector-strong $(call cc-option,-fstack-clash-protection) \
	$(call cc-option,-fcf-protection) -fPIE
ifeq ($(SANFLAGS)$(findstring _FORTIFY_SOURCE,$(CPPFLAGS) $(CFLAGS)),)
HARDEN += -D_FORTIFY_SOURCE=2
endif
# Executables are PIE; plugins (-shared) get -fPIC after -fPIE.
EXE_LDFLAGS := -pie

override CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) $(HARDEN) \
	$(SANFLAGS) -Iinclude -MMD -MP $(CFLAGS)
override LDFLAGS := $(SANFLAGS) -Wl,-z,relro -Wl,-z,now $(LDFLAGS)
PLUGIN_CFLAGS := -fPIC -fvisibility=hidden
# Filter plugins (plugins/filter/) work on libvips images. Which libvips:
# VIPS=system (the default): the distribution's, through pkg-config.
# VIPS=bundled: the prebuilt one sharp uses (pinned, checksum-checked npm
# packages fetched by pkg/vips/fetch), headers under $(BUILD)/vips/include,
# the library in $(BUILD)/lib/vips, found by every binary and plugin through
# an $ORIGIN-relative rpath (no LD_LIBRARY_PATH). Build it in its own dir:
# make VIPS=bundled BUILD=build-bundled all
VIPS ?= system
ifeq ($(VIPS),bundled)
VIPS_FETCHED := $(BUILD)/vips/.fetched
VIPS_CFLAGS := -I$(BUILD)/vips/include -I$(BUILD)/vips/include/glib-2.0
VIPS_LIBS := -L$(BUILD)/lib/vips -l:libvips-cpp.so.8.18.7 \
	-Wl,-rpath,'$$ORIGIN/lib/vips:$$ORIGIN/../lib/vips:$$ORIGIN/../../lib/vips'
else ifeq ($(VIPS),system)
VIPS_CFLAGS := $(shell pkg-config --cflags vips 2>/dev/null)
VIPS_LIBS := $(shell pkg-config --libs vips 2>/dev/null)
else
$(error VIPS=$(VIPS): system or bundled)
endif
DEFS := -DIMGNODE_VERSION='"$(VERSION)"' \
	-DIMGNODE_VIPS='"$(VIPS)"' \
	-DIMGNODE_PLUGIN_DIR='"$(PLUGINDIR)"' \
	-DIMGNODE_WWW_DIR='"$(WWWDIR)"' \
	-DIMGNODE_SYSCONFDIR='"$(SYSCONFDIR)"'

# The supervision runtime and config: no libvips, librados or librabbitmq.
CORE_SRC := core/log.c core/conf_value.c core/config.c core/conf_keys.c \
	core/host.c core/plugin.c core/util.c core/loop.c core/spawn.c \
	core/supervisor.c core/sup_machine.c core/sup_deadline.c \
	core/sup_status.c core/control.c core/notify.c
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
CORE_LIBS := -linih -ldl -ljansson
MAIN_OBJ := $(BUILD)/core/main.o
# imgnodectl reads the config (for the socket path), speaks JSON, and runs
# pipelines locally (process) with the workers' code.
# submit speaks HTTP to a node with libcurl.
CTL_OBJ := $(BUILD)/core/imgnodectl.o $(BUILD)/core/submit.o \
	$(BUILD)/core/submit_http.o
CTL_LIBS := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
# The image node above the runtime (pipelines, jobs, ingress, workers).
NODE_SRC := $(sort $(wildcard core/node/*.c))
NODE_OBJ := $(NODE_SRC:%.c=$(BUILD)/%.o)

# One plugin per file: plugins/KIND/NAME.c -> $(BUILD)/plugins/NAME.so.
# A plugin's libraries go in LIBS_NAME.
LIBS_amqp := -lrabbitmq
LIBS_rados := -lrados
PLUGIN_SRC := $(wildcard plugins/*/*.c)
# A bigger plugin is a folder: plugins/KIND/NAME/*.c -> $(BUILD)/plugins/NAME.so.
PLUGIN_DIRS := $(patsubst %/,%,$(sort $(dir $(wildcard plugins/*/*/*.c))))
PLUGINS := $(foreach s,$(PLUGIN_SRC),$(BUILD)/plugins/$(basename $(notdir $(s))).so) \
	$(foreach d,$(PLUGIN_DIRS),$(BUILD)/plugins/$(notdir $(d)).so)

# One unit test per module: test/unit/test_X.c, linked with the core.
TEST_SRC := $(wildcard test/unit/test_*.c)
TESTS := $(TEST_SRC:test/unit/%.c=$(BUILD)/test/%)
# libFuzzer harnesses (make FUZZ=1 fuzzers, make fuzz): test/fuzz/fuzz_X.c.
FUZZ_SRC := $(wildcard test/fuzz/fuzz_*.c)
FUZZERS := $(FUZZ_SRC:test/fuzz/%.c=$(BUILD)/test/%)
# What the plugin tests share: loading and configuring a plugin.
HARNESS_OBJ := $(BUILD)/test/harness.o
# What the filter tests share: loaded filters, arguments, corpus images.
FILTERKIT_OBJ := $(BUILD)/test/filterkit.o
# Small plugins, good and bad, that the loader's tests load.
FIXTURES := ok transport storage bad_magic bad_major new_minor bad_kind no_name \
	bad_name no_symbol no_ops missing_op dup_a dup_b crash \
	crash_selftest bad_selftest segv slow old_storage
FIXTURE_SO := $(FIXTURES:%=$(BUILD)/test/fixtures/%.so)

.DELETE_ON_ERROR:
.PHONY: all plugins deps run check check-cluster bench-cluster check-fresh bench install clean lint format ini \
	fuzz fuzzers

# Programs and plugins the end-to-end tests drive: a second watermark.so
# (another version, other text) for the hot-swap tests; mkheic, which
# makes the HEIC photo the upload tests send.
E2E_BIN := $(BUILD)/test/supdriver $(BUILD)/test/plugins-v2/watermark.so \
	$(BUILD)/test/mkheic

# the first rule, so the default goal: a plain `make` (the package's
# build too) builds everything
all: $(BUILD)/imgnode $(BUILD)/imgnodectl $(PLUGINS) $(TESTS) $(FIXTURE_SO) $(E2E_BIN)

plugins: $(PLUGINS)

# Objects are rebuilt when the flags change (PREFIX is compiled in as the
# default plugin dir: `make install PREFIX=/usr` after `make` must rebuild).
FLAGS_STAMP := $(BUILD)/.flags
$(shell mkdir -p $(BUILD); echo '$(CC) $(CPPFLAGS) $(DEFS) $(CFLAGS) $(LDFLAGS)' \
	| cmp -s - $(FLAGS_STAMP) || echo '$(CC) $(CPPFLAGS) $(DEFS) $(CFLAGS) $(LDFLAGS)' >$(FLAGS_STAMP))

# Every object depends on the flags stamp: the bundled libvips is fetched
# before any is compiled.
ifdef VIPS_FETCHED
$(FLAGS_STAMP): | $(VIPS_FETCHED)
$(VIPS_FETCHED): pkg/vips/package-lock.json pkg/vips/fetch
	$(Q)pkg/vips/fetch $(BUILD)
endif

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(DEFS) $(CFLAGS) -c $< -o $@

# The node's children use libvips, libmicrohttpd, libcrypto and libseccomp
# (the workers' sandbox), and libcurl (the notifier's webhooks); the
# supervisor links them but never initialises them.
NODE_LIBS := $(VIPS_LIBS) -lmicrohttpd -lcrypto -lseccomp $(CTL_LIBS)
$(NODE_OBJ): override CFLAGS += $(VIPS_CFLAGS)

$(BUILD)/imgnode: $(MAIN_OBJ) $(NODE_OBJ) $(CORE_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $(EXE_LDFLAGS) $^ -o $@ $(CORE_LIBS) $(NODE_LIBS)

$(BUILD)/imgnodectl: $(CTL_OBJ) $(NODE_OBJ) $(CORE_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $(EXE_LDFLAGS) $^ -o $@ $(CORE_LIBS) $(NODE_LIBS) $(CTL_LIBS)

define plugin_rule
$(BUILD)/plugins/$(basename $(notdir $(1))).so: $(1) $(FLAGS_STAMP)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  PLUGIN  $$@")
	$$(Q)$$(CC) $$(CPPFLAGS) $$(CFLAGS) $$(PLUGIN_CFLAGS) \
		$(if $(filter plugins/filter/%,$(1)),$$(VIPS_CFLAGS)) -shared $$< \
		-o $$@ $$(LDFLAGS) $$(LIBS_$(basename $(notdir $(1)))) \
		$(if $(filter plugins/filter/%,$(1)),$$(VIPS_LIBS))
endef
$(foreach s,$(PLUGIN_SRC),$(eval $(call plugin_rule,$(s))))

# A folder plugin depends on all its files and the public headers, named
# here: gcc writes one .d for the whole .so (the last source's), so it is not
# read (nor is one left by the plugin when it was a single file).
define plugin_dir_rule
$(BUILD)/plugins/$(notdir $(1)).so: $(wildcard $(1)/*.c) $(wildcard $(1)/*.h) \
		$(wildcard include/imgnode/*.h) $(FLAGS_STAMP)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  PLUGIN  $$@")
	$$(Q)$$(CC) $$(CPPFLAGS) $$(CFLAGS) $$(PLUGIN_CFLAGS) -I$(1) -shared \
		$$(filter %.c,$$^) -o $$@ $$(LDFLAGS) $$(LIBS_$(notdir $(1)))
endef
$(foreach d,$(PLUGIN_DIRS),$(eval $(call plugin_dir_rule,$(d))))

$(HARNESS_OBJ): test/unit/harness.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(DEFS) $(CFLAGS) -Icore -c $< -o $@

$(FILTERKIT_OBJ): test/unit/filterkit.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(DEFS) $(CFLAGS) $(VIPS_CFLAGS) -Icore -c $< -o $@

$(BUILD)/test/%: test/unit/%.c $(HARNESS_OBJ) $(FILTERKIT_OBJ) $(NODE_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CPPFLAGS) $(DEFS) $(CFLAGS) $(VIPS_CFLAGS) -Icore \
		$(filter %.c %.o,$^) -o $@ $(LDFLAGS) $(EXE_LDFLAGS) $(CORE_LIBS) \
		$(NODE_LIBS) -lcmocka

$(BUILD)/test/supdriver: test/e2e/supdriver.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(DEFS) $(CFLAGS) -Icore $(filter %.c %.o,$^) -o $@ \
		$(LDFLAGS) $(EXE_LDFLAGS) $(CORE_LIBS) $(NODE_LIBS)

$(BUILD)/test/mkheic: test/e2e/mkheic.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(VIPS_CFLAGS) $< -o $@ $(LDFLAGS) \
		$(EXE_LDFLAGS) $(VIPS_LIBS)

$(BUILD)/test/plugins-v2/watermark.so: plugins/filter/watermark.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(PLUGIN_CFLAGS) $(VIPS_CFLAGS) \
		-DWATERMARK_VERSION='"2.0-test"' -DWATERMARK_PREFIX='"v2 "' \
		-shared $< -o $@ $(LDFLAGS) $(VIPS_LIBS)

$(BUILD)/test/fixtures/%.so: test/unit/fixture_plugin.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(PLUGIN_CFLAGS) -DFIXTURE_$* -shared \
		$< -o $@ $(LDFLAGS)

-include $(CORE_OBJ:.o=.d) $(NODE_OBJ:.o=.d) $(HARNESS_OBJ:.o=.d) $(FILTERKIT_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(CTL_OBJ:.o=.d) \
	$(BENCH_BIN:=.d) $(TESTS:=.d) $(E2E_BIN:=.d) $(FUZZERS:=.d) \
	$(foreach s,$(PLUGIN_SRC),$(BUILD)/plugins/$(basename $(notdir $(s))).d) \
	$(FIXTURE_SO:.so=.d)

# The packages make check needs (test/lib/deps check), as root.
deps:
	$(Q)test/lib/deps check

# A node on the shipped config, its state and runtime dirs under build/run/:
# only the packages that build and run it, then the build (a sub-make, which
# sees the libraries just installed), then the node. Each step says so.
run:
	@echo "make run: 1/3 packages (test/lib/deps run)"
	$(Q)test/lib/deps run
	@echo "make run: 2/3 building (make all, on every CPU unless -j says)"
	$(Q)$(MAKE) --no-print-directory \
		$(if $(filter -j%,$(MAKEFLAGS)),,-j$(shell nproc 2>/dev/null || echo 1)) all
	@echo "make run: 3/3 starting a node (test/lib/run-node)"
	$(Q)test/lib/run-node $(BUILD)

check: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) SAN=$(SAN) test/run-checks

# Three hosts on this machine (network namespaces, each a RabbitMQ, a Ceph
# mon + OSD and a node; nginx in front: test/lib/cluster) under faults: a
# host killed, cut off, a rolling restart, the quorum leader's host killed,
# an OSD full. Counts every job (lost must be 0) and checks every result
# against one node's (test/cluster/run.py). As root; about 7 minutes;
# CLUSTER_K=N picks the namespaces' set (default 0).
check-cluster: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)test/data/corpus
	$(Q)BUILD=$(BUILD) /usr/bin/python3 test/cluster/run.py

# The same fixed batch through 1, 2 and 3 nodes of that cluster: jobs/s
# and CPU per job of the nodes, RabbitMQ and Ceph (test/cluster/scale.py,
# root; a measurement, nothing asserted), into bench/results/cluster.md.
bench-cluster: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)test/data/corpus
	$(Q)BUILD=$(BUILD) /usr/bin/python3 test/cluster/scale.py \
		--out bench/results/cluster.md

# The README's make run and make deps on a fresh machine: a clean clone of
# HEAD in a booted bookworm container (as root, a few minutes; check runs it).
check-fresh: deps
	$(Q)test/fresh/run $(BUILD)

BENCH_BIN := $(BUILD)/bench/bench_pipeline

# libFuzzer harnesses, one per parser of outside input: test/fuzz/fuzz_X.c
# -> $(BUILD)/fuzz/test/fuzz_X (make FUZZ=1 fuzzers builds them; the
# pipeline and config harnesses read the fuzz build's plugins). `make fuzz`
# runs each for FUZZ_SECONDS on its corpus (seeded from test/fuzz/corpus);
# make check runs each for a fixed number of inputs (test/fuzz/run).
FUZZ_SECONDS ?= 600

$(BUILD)/test/fuzz_%: test/fuzz/fuzz_%.c $(NODE_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZER  $@")
	$(Q)$(CC) $(CPPFLAGS) $(DEFS) $(CFLAGS) $(VIPS_CFLAGS) -Icore \
		-fsanitize=fuzzer $(filter %.c %.o,$^) -o $@ $(LDFLAGS) \
		$(EXE_LDFLAGS) $(CORE_LIBS) $(NODE_LIBS)

fuzzers: $(FUZZERS) $(PLUGINS)

fuzz: deps
	$(Q)$(MAKE) --no-print-directory FUZZ=1 fuzzers
	$(Q)test/fuzz/run --seconds $(FUZZ_SECONDS) $(BUILD)/fuzz

$(BUILD)/bench/%: test/bench/%.c $(NODE_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  BENCH   $@")
	$(Q)$(CC) $(CPPFLAGS) $(DEFS) $(CFLAGS) $(VIPS_CFLAGS) -Icore \
		$(filter %.c %.o,$^) -o $@ $(LDFLAGS) $(EXE_LDFLAGS) $(CORE_LIBS) \
		$(NODE_LIBS)

# With the bundled libvips too, in $(BUILD)-bundled, for bench_peers's
# comparison (skipped, saying so, when it cannot be fetched or built).
bench: deps
	$(Q)$(MAKE) --no-print-directory all $(BENCH_BIN)
	$(Q)$(MAKE) --no-print-directory VIPS=bundled BUILD=$(BUILD)-bundled \
		$(BUILD)-bundled/imgnode $(BUILD)-bundled/bench/bench_pipeline \
		plugins || echo "make bench: no bundled libvips build (make VIPS=bundled failed): bench_peers compares the system one only"
	$(Q)BUILD=$(BUILD) test/bench/run

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PLUGINDIR) \
		$(DESTDIR)$(PREFIX)/include/imgnode \
		$(DESTDIR)$(SYSCONFDIR)/imgnode/conf.d $(DESTDIR)$(WWWDIR)
	install -m 0755 $(BUILD)/imgnode $(DESTDIR)$(PREFIX)/sbin/imgnode
	install -m 0755 $(BUILD)/imgnodectl $(DESTDIR)$(PREFIX)/sbin/imgnodectl
	$(if $(PLUGINS),install -m 0644 $(PLUGINS) $(DESTDIR)$(PLUGINDIR)/)
	install -m 0644 include/imgnode/plugin.h \
		$(DESTDIR)$(PREFIX)/include/imgnode/plugin.h
	install -m 0644 $(WWW_FILES) $(DESTDIR)$(WWWDIR)/
	sed -e 's|^;plugin_dir = .*|;plugin_dir = $(PLUGINDIR)|' \
		-e 's|^;www_dir = .*|;www_dir = $(WWWDIR)|' \
		etc/imgnode/imgnode.ini >$(DESTDIR)$(SYSCONFDIR)/imgnode/imgnode.ini
	chmod 0644 $(DESTDIR)$(SYSCONFDIR)/imgnode/imgnode.ini

# Regenerates the shipped config from the key tables (core and plugins); it
# shows the Debian package's plugin and page dirs, and install rewrites
# those lines.
ini: $(BUILD)/imgnode $(PLUGINS)
	$(Q)mkdir -p $(BUILD)/ini
	$(Q)printf '[node]\nplugin_dir = %s\n' "$(abspath $(BUILD))/plugins" \
		>$(BUILD)/ini/imgnode.ini
	$(Q)$(BUILD)/imgnode -c $(BUILD)/ini/imgnode.ini --print-defaults | \
		sed -e 's|^;plugin_dir = .*|;plugin_dir = /usr/lib/$(MULTIARCH)/imgnode/plugins|' \
		-e 's|^;www_dir = .*|;www_dir = /usr/share/imgnode/www|' \
		>etc/imgnode/imgnode.ini

LINT_SRC = $(sort $(wildcard core/*.[ch] core/*/*.[ch] include/imgnode/*.h \
	plugins/*/*.[ch] plugins/*/*/*.[ch] test/unit/*.c test/e2e/*.c \
	test/bench/*.c test/fuzz/*.[ch] pkg/deb/example/*.c))

lint:
	$(Q)test/lib/lint $(LINT_SRC)

format:
	$(Q)clang-format -i $(LINT_SRC)

clean:
	rm -rf $(BUILD)

include pkg/deb/Makefile.inc
