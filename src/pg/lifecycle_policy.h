// Lifecycle policies as the cdp.lifecycle aggregates read them (src/pg/lifecycle.cpp), for the other
// glue that applies the lifecycle rule (cdp.refresh_profiles).
#pragma once
#include "pg/boundary.h"

#include "core/lifecycle.h"

#include <cstddef>

namespace cdp::pg {

// The thresholds of the policy `name` (length bytes) from cdp.lifecycle_policies, with the aggregates'
// errors: 42704 naming the known policies when it does not exist, 22023 when it is not sane. Reads with
// SPI; throws (call it inside guarded()).
cdp::lifecycle::Policy lifecycle_policy(const char* name, std::size_t length);

}  // namespace cdp::pg
