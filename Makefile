# pg_cdp: PGXS build of the extension (make && make install; honours PG_CONFIG).
# The PostgreSQL-free core and its unit tests are built by CMakeLists.txt instead.
EXTENSION  = pg_cdp
EXTVERSION = 0.1.0
MODULE_big = pg_cdp

CORE_SRCS  = $(sort $(wildcard src/core/*.cpp))
GLUE_SRCS  = $(sort $(wildcard src/pg/*.cpp))
OBJS       = $(CORE_SRCS:.cpp=.o) $(GLUE_SRCS:.cpp=.o)

# The install script is generated from one source per capability (src/sql/NN_*.sql), in name order.
SQL_SRCS   = $(sort $(wildcard src/sql/*.sql))
DATA_built = $(EXTENSION)--$(EXTVERSION).sql

# pg_regress: one file per capability in sql/, expected output in expected/.
REGRESS   := $(basename $(notdir $(sort $(wildcard sql/*.sql))))
# Isolation tests (concurrent sessions) in specs/.
ISOLATION := $(basename $(notdir $(sort $(wildcard specs/*.spec))))

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src
PG_CXXFLAGS = -std=c++17 -pthread -Wno-register -Wno-missing-field-initializers -fvisibility-inlines-hidden
# -pthread: the identity reader normalises phones on one worker thread (src/core/worker_thread.h).
SHLIB_LINK += -lphonenumber -lstdc++ -pthread

# No LLVM bitcode: Debian's server is built with LLVM JIT, and PGXS would install our C++ as bitcode
# for the JIT inliner. LLVM 14's inliner aborts the whole server (assertion in FunctionSummary cast)
# when it reaches that bitcode, e.g. on any large enough query calling cdp.person_id(). Our functions
# are not worth inlining anyway; without bitcode the JIT simply calls them. `override` wins over the
# with_llvm = yes that Makefile.global sets below. sql/01_jit.sql runs such queries with JIT forced.
override with_llvm = no

EXTRA_CLEAN = $(DATA_built) results regression.diffs regression.out output_iso

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# An older build may have installed bitcode; the inliner would still find it, so install removes it.
install: remove-stale-bitcode
.PHONY: remove-stale-bitcode
remove-stale-bitcode:
	rm -rf '$(DESTDIR)$(pkglibdir)/bitcode/$(MODULE_big)' '$(DESTDIR)$(pkglibdir)/bitcode/$(MODULE_big).index.bc'

$(DATA_built): $(SQL_SRCS)
	cat $^ > $@

$(OBJS): $(wildcard src/core/*.h) $(wildcard src/pg/*.h)
