// CDNNL: oneDNN's C API (Debian's libdnnl-dev, oneDNN 2.6, OpenMP runtime), for the Kernels target.
// Corresponds to no reference file; the macros Swift cannot import are re-exported as static inline getters.
#pragma once
#include <oneapi/dnnl/dnnl.h>

static inline int mp_dnnl_arg_src(void) { return DNNL_ARG_SRC; }
static inline int mp_dnnl_arg_weights(void) { return DNNL_ARG_WEIGHTS; }
static inline int mp_dnnl_arg_dst(void) { return DNNL_ARG_DST; }
static inline int mp_dnnl_arg_scratchpad(void) { return DNNL_ARG_SCRATCHPAD; }
static inline int mp_dnnl_arg_bias(void) { return DNNL_ARG_BIAS; }
static inline int mp_dnnl_arg_diff_src(void) { return DNNL_ARG_DIFF_SRC; }
static inline int mp_dnnl_arg_diff_dst(void) { return DNNL_ARG_DIFF_DST; }
static inline int mp_dnnl_arg_diff_weights(void) { return DNNL_ARG_DIFF_WEIGHTS; }
static inline int mp_dnnl_arg_from(void) { return DNNL_ARG_FROM; }
static inline int mp_dnnl_arg_to(void) { return DNNL_ARG_TO; }
static inline int mp_dnnl_max_ndims(void) { return DNNL_MAX_NDIMS; }

/// oneDNN's CPU runtime here is OpenMP (DNNL_CPU_RUNTIME_OMP), so its thread count is OpenMP's. libgomp is loaded
/// as libdnnl's dependency; its calls are looked up at run time, so nothing links against libgomp by name (the
/// unversioned libgomp.so is a GCC development file). The count applies to parallel regions this thread starts.
#include <dlfcn.h>
static inline void *mp_gomp(const char *name) {
    void *lib = dlopen("libgomp.so.1", RTLD_NOW);
    return lib ? dlsym(lib, name) : 0;
}
/// `name` from libgomp, looked up once per `slot` (1 there records "not found"). Called from many threads at once
/// (Swift Testing's parallel tests, a rank's worker threads): the slot is read and written atomically, and racing
/// lookups store the same value.
static inline void *mp_gomp_once(void **slot, const char *name) {
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f) {
        f = mp_gomp(name);
        if (!f) f = (void *)1;
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f == (void *)1 ? 0 : f;
}
static inline int mp_dnnl_set_threads(int n) {
    static void *slot = 0;
    void (*f)(int) = (void (*)(int))mp_gomp_once(&slot, "omp_set_num_threads");
    if (!f) return -1;
    f(n > 0 ? n : 1);
    return 0;
}
static inline int mp_dnnl_get_threads(void) {
    static void *slot = 0;
    int (*f)(void) = (int (*)(void))mp_gomp_once(&slot, "omp_get_max_threads");
    return f ? f() : -1;
}

/// libgomp's entry for `#pragma omp parallel` (GCC's ABI: fn(data) runs on every thread of a team of `threads`,
/// the caller among them), so that MaskPilot's own parallel loops run on the same OpenMP threads as oneDNN's instead
/// of a second pool competing with them. -1 when libgomp is not loaded.
typedef void (*mp_omp_body)(void *);
static inline int mp_omp_parallel(mp_omp_body fn, void *data, unsigned threads) {
    static void *slot = 0;
    void (*entry)(mp_omp_body, void *, unsigned, unsigned) =
        (void (*)(mp_omp_body, void *, unsigned, unsigned))mp_gomp_once(&slot, "GOMP_parallel");
    if (!entry) return -1;
    entry(fn, data, threads, 0);
    return 0;
}
