// ingress/limits.h is header-only; this file keeps ingress_lib non-empty while the
// rest of the library is built up.
#include "ingress/limits.h"
