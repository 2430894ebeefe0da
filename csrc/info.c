/* info.c: what was built, reported by miniclip.build_info(). */
#include "miniclip.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef MINICLIP_COMPILE_FLAGS
#define MINICLIP_COMPILE_FLAGS "unknown"
#endif
#ifndef MINICLIP_DEBUG_BUILD
#define MINICLIP_DEBUG_BUILD 0
#endif

const char *miniclip_compile_flags(void) { return MINICLIP_COMPILE_FLAGS; }

int miniclip_has_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int miniclip_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void miniclip_set_num_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int miniclip_debug_build(void) { return MINICLIP_DEBUG_BUILD; }
