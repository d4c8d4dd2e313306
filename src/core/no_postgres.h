// Included last by every src/core/*.cpp: the core is plain C++17 and must build, and be unit-tested,
// without PostgreSQL. (CMake also compiles it with no PostgreSQL include path at all.)
#pragma once
#ifdef POSTGRES_H
#error "src/core must not include PostgreSQL headers"
#endif
