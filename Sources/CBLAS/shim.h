// CBLAS: OpenBLAS's CBLAS interface and thread control, for the Kernels target.
// Corresponds to no reference file; enum constants are re-exported as plain ints for Swift.
#pragma once
#include <cblas.h>

static inline int mp_cblas_row_major(void) { return CblasRowMajor; }
static inline int mp_cblas_no_trans(void) { return CblasNoTrans; }
static inline int mp_cblas_trans(void) { return CblasTrans; }

/// Sets the number of OpenBLAS threads (declared by OpenBLAS's cblas.h).
static inline void mp_blas_set_threads(int n) { openblas_set_num_threads(n); }
static inline int mp_blas_get_threads(void) { return openblas_get_num_threads(); }
