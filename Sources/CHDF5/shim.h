// CHDF5: the HDF5 C API with getters for the macros and global ids Swift cannot import.
// Used by the Checkpoint target (H5P_DEFAULT, H5F_ACC_TRUNC, H5T_NATIVE_FLOAT, ...).
#pragma once
#include <hdf5.h>

static inline hid_t mp_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t mp_h5s_all(void) { return H5S_ALL; }
static inline unsigned mp_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned mp_h5f_acc_excl(void) { return H5F_ACC_EXCL; }
static inline unsigned mp_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned mp_h5f_acc_rdwr(void) { return H5F_ACC_RDWR; }
static inline hid_t mp_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t mp_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t mp_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t mp_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t mp_h5t_native_uint64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t mp_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t mp_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t mp_h5t_std_i64le(void) { return H5T_STD_I64LE; }
static inline hid_t mp_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t mp_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t mp_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t mp_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline size_t mp_h5t_variable(void) { return H5T_VARIABLE; }
static inline int mp_h5z_filter_fletcher32(void) { return H5Z_FILTER_FLETCHER32; }
static inline int mp_h5_index_name(void) { return H5_INDEX_NAME; }
static inline int mp_h5_iter_inc(void) { return H5_ITER_INC; }
/// A new file-access property list with HDF5's file locking off (the caller closes it with H5Pclose), or -1.
/// MaskPilot writes every file once under a `.tmp` name and renames it into place, and only rank 0 writes, so no
/// reader can meet a file being written; HDF5's flock-based locking adds nothing, fails on file systems without
/// flock (some Lustre/NFS mounts, where users otherwise need HDF5_USE_FILE_LOCKING=FALSE), and makes a file look
/// locked while a just-forked child process still holds an inherited descriptor. Before HDF5 1.10.7, which has
/// no such setting, the default list.
static inline hid_t mp_h5p_fapl_without_locking(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if defined(H5_VERSION_GE)
#if H5_VERSION_GE(1, 10, 7)
    if (fapl >= 0 && H5Pset_file_locking(fapl, 0, 1) < 0) { H5Pclose(fapl); return -1; }
#endif
#endif
    return fapl;
}
/// Turns off HDF5's automatic error printing so callers can report errors themselves.
static inline herr_t mp_h5_silence_errors(void) { return H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

// ---- Added for the Checkpoint target's HDF5 wrapper ----
static inline hid_t mp_h5e_default(void) { return H5E_DEFAULT; }
static inline hid_t mp_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t mp_h5t_std_u64le(void) { return H5T_STD_U64LE; }
static inline hid_t mp_h5t_std_i32le(void) { return H5T_STD_I32LE; }
static inline hid_t mp_h5p_dataset_access(void) { return H5P_DATASET_ACCESS; }
static inline haddr_t mp_haddr_undef(void) { return HADDR_UNDEF; }
static inline unsigned mp_h5o_info_basic(void) { return H5O_INFO_BASIC; }

/// H5Oget_info_by_name is a versioned API (1.10.3+: `…2` with a fields mask and H5O_info_t;
/// 1.12+: `…3` with H5O_info2_t). This getter hides the version: it fills the object's type and its
/// number of attributes and returns the call's status (negative on failure, HDF5 error stack set).
static inline herr_t mp_h5o_get_info_by_name(hid_t loc, const char *name, H5O_type_t *type, hsize_t *num_attrs) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    herr_t status = H5Oget_info_by_name3(loc, name, &info, H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS, H5P_DEFAULT);
#elif H5_VERSION_GE(1, 10, 3)
    H5O_info_t info;
    herr_t status = H5Oget_info_by_name2(loc, name, &info, H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS, H5P_DEFAULT);
#else
    H5O_info_t info;
    herr_t status = H5Oget_info_by_name(loc, name, &info, H5P_DEFAULT);
#endif
    if (status >= 0) { *type = info.type; *num_attrs = info.num_attrs; }
    return status;
}
