# svc — top-level build.  GNU make, out of tree into $(BUILD).
#
#   make            build everything into build/ (bin/, lib/)
#   make run        install missing packages, build, run the supervisor on deploy/manifests
#                   (registryd + 3 greeters) in the foreground
#   make test       install missing packages, build, run every suite (also under ASan+UBSan)
#   make fuzz       run the libFuzzer targets (FUZZ_SECONDS each, default 60)
#   make bench      run the benchmarks, print a table, write build/bench/results.jsonl
#   make install    install into $(DESTDIR)$(PREFIX)
#   make clean
#
# Variables: BUILD (output dir), SANITIZE=1 (ASan+UBSan build), CC, CFLAGS, PREFIX, DESTDIR,
# JOBS (parallel compiles in make test and make run; default: the number of CPUs).

BUILD    ?= build
PREFIX   ?= /usr/local
CC       ?= cc
PYTHON   ?= /usr/bin/python3
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
PROTOC_C ?= protoc-c

PKGS     := libzmq libprotobuf-c jansson libsystemd libcrypto lmdb zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lpthread -lm

WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes -Wmissing-prototypes
OPT      ?= -O2 -g
CFLAGS   ?=
ALL_CFLAGS = -std=gnu11 $(OPT) $(WARN) -fPIC -D_GNU_SOURCE $(SAN_FLAGS) \
             -Ilibsvc -I$(BUILD)/gen $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS  ?=

ifeq ($(SANITIZE),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT       := -O1 -g
endif

GEN      := $(BUILD)/gen
OBJ      := $(BUILD)/obj
BIN      := $(BUILD)/bin
LIB      := $(BUILD)/lib

# --- generated protobuf-c code -------------------------------------------
PROTOS      := $(wildcard proto/*.proto)
PROTO_C     := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS))
PROTO_H     := $(PROTO_C:.c=.h)
GREETER_PB  := $(GEN)/greeter.pb-c.c
TEST_PROTOS := $(wildcard tests/unit/*.proto)
TEST_PB_C   := $(patsubst tests/unit/%.proto,$(GEN)/%.pb-c.c,$(TEST_PROTOS))
TEST_PB_OBJ := $(patsubst $(GEN)/%.c,$(OBJ)/gen/%.o,$(TEST_PB_C))


$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	$(PROTOC_C) -Iproto --c_out=$(GEN) $<

$(GEN)/greeter.pb-c.c $(GEN)/greeter.pb-c.h: examples/greeter/greeter.proto
	@mkdir -p $(GEN)
	$(PROTOC_C) -Iexamples/greeter --c_out=$(GEN) $<

# --- objects ---------------------------------------------------------------
$(OBJ)/%.o: %.c | $(PROTO_H) $(GEN)/greeter.pb-c.h $(GEN)/testsvc.pb-c.h $(TEST_PB_C:.c=.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(OBJ)/gen/%.o: $(GEN)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Wmissing-prototypes -Wshadow,$(ALL_CFLAGS)) -c -o $@ $<

objs = $(patsubst %.c,$(OBJ)/%.o,$(1))

# --- libsvc ----------------------------------------------------------------
LIBSVC_SRC  := $(wildcard libsvc/*.c)
LIBSVC_OBJ  := $(call objs,$(LIBSVC_SRC)) $(patsubst $(GEN)/%.c,$(OBJ)/gen/%.o,$(PROTO_C))

$(LIB)/libsvc.a: $(LIBSVC_OBJ)
	@mkdir -p $(LIB)
	rm -f $@ && ar rcs $@ $^

$(LIB)/libsvc.so: $(LIBSVC_OBJ)
	@mkdir -p $(LIB)
	$(CC) -shared -Wl,-soname,libsvc.so.0 $(SAN_FLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

LIBSVC := $(LIB)/libsvc.a
link = $(CC) $(SAN_FLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# --- programs --------------------------------------------------------------
# Every top-level folder with a main.c (registryd, svcctl, and each daemon
# to come: stored, brokerd, supervisor, ...) is one program, bin/<folder>,
# built from all the .c files in that folder and linked with libsvc (which
# holds the generated code of every proto/*.proto).
PROGRAM_DIRS := $(filter-out libsvc tests bench examples,$(patsubst %/main.c,%,$(wildcard */main.c)))
GREETER_GEN   := $(OBJ)/gen/greeter.pb-c.o

define program_rule
$$(BIN)/$(1): $$(call objs,$$(wildcard $(1)/*.c)) $$(LIBSVC)
	@mkdir -p $$(BIN)
	$$(link)
endef
$(foreach d,$(PROGRAM_DIRS),$(eval $(call program_rule,$(d))))

$(BIN)/greeter: $(OBJ)/examples/greeter/server.o $(GREETER_GEN) $(LIBSVC)
	@mkdir -p $(BIN)
	$(link)
$(BIN)/greeter-client: $(OBJ)/examples/greeter/client.o $(GREETER_GEN) $(LIBSVC)
	@mkdir -p $(BIN)
	$(link)
$(GEN)/testsvc.pb-c.c $(GEN)/testsvc.pb-c.h: tests/testsvc.proto
	@mkdir -p $(GEN)
	$(PROTOC_C) -Itests --c_out=$(GEN) $<

$(BIN)/svc-testsvc: $(OBJ)/tests/testsvc.o $(OBJ)/gen/testsvc.pb-c.o $(GREETER_GEN) $(LIBSVC)
	@mkdir -p $(BIN)
	$(link)
$(BIN)/svc-brokertool: $(OBJ)/tests/brokertool.o $(LIBSVC)
	@mkdir -p $(BIN)
	$(link)
$(BIN)/svc-testclient: $(OBJ)/tests/testclient.o $(OBJ)/gen/testsvc.pb-c.o $(LIBSVC)
	@mkdir -p $(BIN)
	$(link)
$(BIN)/fanout: $(OBJ)/examples/fanout/main.o $(LIBSVC)
	@mkdir -p $(BIN)
	$(link)
$(BIN)/svc-bench: $(call objs,$(wildcard bench/*.c)) $(GREETER_GEN) $(LIBSVC)
	@mkdir -p $(BIN)
	$(link)

$(BIN)/svc-storeclient: $(OBJ)/tests/storeclient.o $(LIBSVC)
	@mkdir -p $(BIN)
	$(link)

PROGRAMS := $(addprefix $(BIN)/,$(PROGRAM_DIRS)) $(BIN)/greeter $(BIN)/greeter-client
PROGRAMS += $(BIN)/fanout
TEST_PROGRAMS := $(BIN)/svc-testsvc
TEST_PROGRAMS += $(BIN)/svc-testclient
TEST_PROGRAMS += $(BIN)/svc-brokertool
TEST_PROGRAMS += $(BIN)/svc-storeclient

# --- unit tests ------------------------------------------------------------
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

# Archives link last: a daemon's objects added below may call into libsvc.
$(BUILD)/tests/%: $(OBJ)/tests/unit/%.o $(OBJ)/tests/unit/testlib.o $(TEST_PB_OBJ) $(LIBSVC)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) $(LDFLAGS) -o $@ $(filter-out %.a,$^) $(filter %.a,$^) $(PKG_LIBS)

# Unit tests of a daemon's own code add its objects here.
$(BUILD)/tests/test_manifest: $(OBJ)/supervisor/manifest.o
$(BUILD)/tests/test_overlay: $(OBJ)/stored/overlay.o
$(BUILD)/tests/test_wal: $(OBJ)/stored/wal.o $(OBJ)/stored/overlay.o

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: tests/unit/%.proto
	@mkdir -p $(GEN)
	$(PROTOC_C) -Itests/unit --c_out=$(GEN) $<

# --- top-level targets -----------------------------------------------------
.PHONY: all deps run test unit fuzz bench install clean asan check-fresh
.DEFAULT_GOAL := all
.SECONDARY:

all: $(LIB)/libsvc.a $(LIB)/libsvc.so $(PROGRAMS) $(TEST_PROGRAMS) $(UNIT_BIN) $(BIN)/svc-bench

deps:
	@deploy/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@exec deploy/run-local.sh $(BIN)

test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/asan SANITIZE=1 all
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz-build
	@tests/run.sh

unit: all
	@tests/run-unit.sh $(BUILD)

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=1 all

# --- fuzzing (clang + libFuzzer) -------------------------------------------
comma := ,
FUZZ_SECONDS ?= 60
FUZZ_DIR     := build/fuzz
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_SRC))
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
                -Ilibsvc -I$(FUZZ_DIR)/gen $(PKG_CFLAGS)

# libsvc, the generated code and a target's extra sources are compiled once
# into $(FUZZ_DIR)/obj (instrumented for coverage, not linked with the
# fuzzer's main); each target links its own object with them.
FUZZ_GEN_C   := $(patsubst proto/%.proto,$(FUZZ_DIR)/gen/%.pb-c.c,$(PROTOS)) \
                $(patsubst tests/unit/%.proto,$(FUZZ_DIR)/gen/%.pb-c.c,$(TEST_PROTOS))
FUZZ_OBJ_CFLAGS := $(subst -fsanitize=fuzzer$(comma),-fsanitize=fuzzer-no-link$(comma),$(FUZZ_CFLAGS))
FUZZ_LIB_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(LIBSVC_SRC)) \
                $(patsubst $(FUZZ_DIR)/gen/%.c,$(FUZZ_DIR)/obj/gen/%.o,$(FUZZ_GEN_C))

$(FUZZ_DIR)/gen/.stamp: $(PROTOS) $(TEST_PROTOS)
	@mkdir -p $(FUZZ_DIR)/gen
	$(PROTOC_C) -Iproto --c_out=$(FUZZ_DIR)/gen $(PROTOS)
	$(PROTOC_C) -Itests/unit --c_out=$(FUZZ_DIR)/gen $(TEST_PROTOS)
	@touch $@
$(FUZZ_GEN_C): $(FUZZ_DIR)/gen/.stamp

$(FUZZ_DIR)/obj/gen/%.o: $(FUZZ_DIR)/gen/%.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_OBJ_CFLAGS) -c -o $@ $<
$(FUZZ_DIR)/obj/%.o: %.c $(wildcard libsvc/*.h libsvc/svc/*.h stored/*.h supervisor/*.h) | $(FUZZ_DIR)/gen/.stamp
	@mkdir -p $(dir $@)
	clang $(FUZZ_OBJ_CFLAGS) -Istored -c -o $@ $<

# A fuzz target for a daemon's decoder names the daemon's sources it needs.
FUZZ_EXTRA_fuzz_manifest := supervisor/manifest.c
# fuzz_store also builds stored's sources (all but its main.c).
FUZZ_EXTRA_fuzz_store := $(filter-out stored/main.c,$(wildcard stored/*.c))
FUZZ_EXTRA_fuzz_wal := stored/wal.c stored/overlay.c

# (A function: a % written in the rule below would be the stem, not patsubst's pattern.)
fuzz_objs = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(1))

.SECONDEXPANSION:
$(FUZZ_DIR)/%: $(FUZZ_DIR)/obj/tests/fuzz/%.o $(FUZZ_LIB_OBJ) $$(call fuzz_objs,$$(FUZZ_EXTRA_$$*))
	clang $(FUZZ_CFLAGS) -o $@ $^ $(PKG_LIBS)

.PHONY: fuzz-build
fuzz-build: $(FUZZ_BIN)

fuzz: deps fuzz-build
	@for f in $(FUZZ_BIN); do \
	  n=$$(basename $$f); mkdir -p build/fuzz/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build/fuzz/corpus/$$n tests/fuzz/corpus/$$n 2>&1 | tail -3 || exit 1; \
	done

# --- benchmarks ------------------------------------------------------------
bench: deps
	@deploy/install-deps.sh --bench
	@$(MAKE) --no-print-directory all $(GRPC_BENCH)
	@bench/run.sh $(BUILD)

# The gRPC peer (C++, BENCH_PACKAGES): built only for `make bench`, never by `all`.
GRPC_GEN   := $(GEN)/grpc
GRPC_BENCH := $(BIN)/grpc-bench
CXX        ?= c++

$(GRPC_GEN)/echo.grpc.pb.cc: $(GRPC_GEN)/echo.pb.cc
$(GRPC_GEN)/echo.pb.cc: bench/grpc/echo.proto
	@mkdir -p $(GRPC_GEN)
	protoc -Ibench/grpc --cpp_out=$(GRPC_GEN) --grpc_out=$(GRPC_GEN) \
	    --plugin=protoc-gen-grpc="$$(command -v grpc_cpp_plugin)" $<

$(GRPC_BENCH): bench/grpc/grpc-bench.cc $(GRPC_GEN)/echo.pb.cc $(GRPC_GEN)/echo.grpc.pb.cc
	@mkdir -p $(BIN)
	$(CXX) -std=c++17 -O2 -g -Wall -Werror -I$(GRPC_GEN) -o $@ $^ \
	    $$(pkg-config --cflags --libs grpc++ protobuf)

# --- install ---------------------------------------------------------------
# Layout: binaries in $(PREFIX)/bin; libsvc.a, libsvc.so.0 (+ .so link) and
# pkgconfig/svc.pc in $(PREFIX)/lib; headers (svc/*.h and the generated
# *.pb-c.h, which include each other) in $(PREFIX)/include/svc; the systemd
# unit in $(PREFIX)/lib/systemd/system; svc.env and manifests/ in
# $(SYSCONFDIR)/svc (/etc for PREFIX=/usr, else $(PREFIX)/etc).
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
SVC_VERSION ?= 0.1.0
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/svc
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIB)/libsvc.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB)/libsvc.so $(DESTDIR)$(PREFIX)/lib/libsvc.so.0
	ln -sf libsvc.so.0 $(DESTDIR)$(PREFIX)/lib/libsvc.so
	install -m 644 libsvc/svc/*.h $(PROTO_H) $(DESTDIR)$(PREFIX)/include/svc/
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/lib/systemd/system \
	           $(DESTDIR)$(SYSCONFDIR)/svc/manifests
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(SVC_VERSION)|g' deploy/svc.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/svc.pc
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    deploy/svc-supervisor.service.in > $(DESTDIR)$(PREFIX)/lib/systemd/system/svc-supervisor.service
	install -m 644 deploy/svc.env $(DESTDIR)$(SYSCONFDIR)/svc/svc.env
	install -m 644 deploy/manifests/*.ini $(DESTDIR)$(SYSCONFDIR)/svc/manifests/

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
