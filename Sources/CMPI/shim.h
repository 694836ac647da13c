// CMPI: Open MPI's C API with getters for the handle macros Swift cannot import.
// Used by the Distributed target (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...).
#pragma once
#include <mpi.h>

static inline MPI_Comm mp_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline int mp_mpi_max_library_version_string(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }
static inline MPI_Comm mp_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype mp_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype mp_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype mp_mpi_int(void) { return MPI_INT; }
static inline MPI_Datatype mp_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype mp_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype mp_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype mp_mpi_char(void) { return MPI_CHAR; }
static inline MPI_Op mp_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op mp_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op mp_mpi_min(void) { return MPI_MIN; }
static inline MPI_Op mp_mpi_lor(void) { return MPI_LOR; }
static inline MPI_Request mp_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *mp_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *mp_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline void *mp_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int mp_mpi_success(void) { return MPI_SUCCESS; }
static inline int mp_mpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline int mp_mpi_any_tag(void) { return MPI_ANY_TAG; }
static inline int mp_mpi_thread_single(void) { return MPI_THREAD_SINGLE; }
static inline int mp_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int mp_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int mp_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline MPI_Errhandler mp_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Errhandler mp_mpi_errors_are_fatal(void) { return MPI_ERRORS_ARE_FATAL; }
static inline int mp_mpi_undefined(void) { return MPI_UNDEFINED; }
