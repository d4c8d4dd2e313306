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
PG_CXXFLAGS = -std=c++17 -Wno-register -Wno-missing-field-initializers -fvisibility-inlines-hidden
SHLIB_LINK += -lphonenumber -lstdc++

# Debian's server is built with LLVM JIT, so PGXS also compiles each .cpp to bitcode with clang
# (a dependency of postgresql-server-dev); that compile needs the C++17 flags too.
COMPILE.cxx.bc = $(CLANG) -xc++ -Wno-ignored-attributes -Wno-register $(BITCODE_CXXFLAGS) $(CPPFLAGS) \
                 $(PG_CXXFLAGS) -flto=thin -emit-llvm -c

EXTRA_CLEAN = $(DATA_built) results regression.diffs regression.out output_iso

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(DATA_built): $(SQL_SRCS)
	cat $^ > $@

$(OBJS): $(wildcard src/core/*.h) $(wildcard src/pg/*.h)
