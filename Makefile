# PGXS build of the vibescaling extension: the Postgres-free core
# (src/core, also built and unit-tested by CMakeLists.txt) and the thin
# Postgres layer (src/pg) go into one shared library.
EXTENSION   = vibescaling
MODULE_big  = vibescaling
# The version is written once, in the control file.
EXT_VERSION = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

CORE_SRCS = $(sort $(wildcard src/core/*.cpp))
PG_SRCS   = $(sort $(wildcard src/pg/*.cpp))
OBJS      = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

# The current version's script is src/sql/*.sql concatenated in name order.
# Released versions are frozen in src/sql/releases: their install scripts,
# exactly as they shipped, and the upgrade script from each to the next
# (ALTER EXTENSION vibescaling UPDATE walks them).
SQL_PARTS  = $(sort $(wildcard src/sql/*.sql))
DATA_built = $(EXTENSION)--$(EXT_VERSION).sql
DATA       = $(sort $(wildcard src/sql/releases/$(EXTENSION)--*.sql))

# pg_regress (sql/, expected/): the SQL surface. They need the simulator
# (scripts/test.sh starts it) and pg_cron preloaded.
REGRESS      = 00_setup 01_surface 02_bad_input 03_scheduler
REGRESS_OPTS = --inputdir=. --load-extension=pgcrypto --load-extension=vibescaling

# Debian's FFmpeg libraries (libavformat, libavcodec, libavutil) for the
# media checks. PG_CPPFLAGS reach the bitcode rule too.
LIBAV_PKGS  = libavformat libavcodec libavutil
PG_CPPFLAGS = $(shell pkg-config --cflags $(LIBAV_PKGS))
PG_CXXFLAGS = -std=c++17 -fPIC -Wall -Wno-missing-field-initializers -Wno-register
SHLIB_LINK  = -lcurl -ljansson $(shell pkg-config --libs $(LIBAV_PKGS)) -lstdc++
EXTRA_CLEAN = $(DATA_built)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Debian's PGXS also emits LLVM bitcode, and its .cpp -> .bc rule ignores
# PG_CXXFLAGS.
COMPILE.cxx.bc += -std=c++17 -Wno-register

$(DATA_built): $(SQL_PARTS)
	cat $^ > $@

# PGXS tracks no header dependencies: rebuild every object when a header
# changes (an object compiled against an older vs_call_result would write
# past the end of the new one).
$(OBJS): $(wildcard src/core/*.h src/core/*.hpp src/pg/*.h)

# jansson's json_object() has the same name as a function the postgres
# executable exports, and the dynamic linker binds our reference to the
# executable's (a crash). The core makes objects with new_json_object()
# (src/core/json_raii.hpp) instead; this check keeps it that way.
all: check-jansson-symbols
.PHONY: check-jansson-symbols
check-jansson-symbols: $(shlib)
	@if nm -u $(shlib) | grep -qw json_object; then \
	  echo "error: $(shlib) references json_object, which resolves to PostgreSQL's; use new_json_object()" >&2; exit 1; fi

# The C++ core's GoogleTest unit tests (CMakeLists.txt): no root, no
# database, no simulator (the tests start their own servers on 127.0.0.1).
#   make check-core
.PHONY: check-core
check-core:
	cmake -S . -B build/core -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build/core -j2 >/dev/null
	ctest --test-dir build/core --output-on-failure
