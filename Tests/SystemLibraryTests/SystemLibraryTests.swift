// Tests that each system-library module links and that its shim getters return the C macros' values.
// Covers CBLAS (OpenBLAS), CMPI (Open MPI, library calls that need no launcher), CHDF5, CImageCodecs.
import CBLAS
import CDNNL
import CHDF5
import CImageCodecs
import CMPI
import Foundation
import Testing

@Suite struct SystemLibraryTests {
    @Test func openBLASComputesAProduct() {
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        var c = [Float](repeating: 0, count: 4)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1, a, 2, b, 2, 0, &c, 2)
        #expect(c == [19, 22, 43, 50])
        #expect(mp_cblas_row_major() == Int32(CblasRowMajor.rawValue))
        mp_blas_set_threads(1)
        #expect(mp_blas_get_threads() == 1)
    }

    @Test func mpiLibraryAnswersWithoutInit() {
        var major: Int32 = 0, minor: Int32 = 0
        #expect(MPI_Get_version(&major, &minor) == mp_mpi_success())
        #expect(major >= 3)
        var initialized: Int32 = 1
        MPI_Initialized(&initialized)
        #expect(initialized == 0)
        // Handles are predefined objects, distinct per macro (MPI_Type_size etc. need MPI_Init: see MPITests).
        #expect(mp_mpi_float() != mp_mpi_double())
        #expect(mp_mpi_sum() != mp_mpi_max())
    }

    @Test func hdf5WritesAndReadsAFloatDataset() throws {
        _ = mp_h5_silence_errors()
        var maj: UInt32 = 0, min: UInt32 = 0, rel: UInt32 = 0
        #expect(H5get_libversion(&maj, &min, &rel) >= 0 && maj == 1)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mp-syslib-\(getpid()).h5").path
        defer { unlink(path) }
        let file = H5Fcreate(path, mp_h5f_acc_trunc(), mp_h5p_default(), mp_h5p_default())
        #expect(file >= 0)
        var dims: [hsize_t] = [2, 3]
        let space = H5Screate_simple(2, &dims, nil)
        let dset = H5Dcreate2(file, "x", mp_h5t_ieee_f32le(), space, mp_h5p_default(), mp_h5p_default(), mp_h5p_default())
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        #expect(H5Dwrite(dset, mp_h5t_native_float(), mp_h5s_all(), mp_h5s_all(), mp_h5p_default(), values) >= 0)
        H5Dclose(dset); H5Sclose(space); H5Fclose(file)
        let rf = H5Fopen(path, mp_h5f_acc_rdonly(), mp_h5p_default())
        let rd = H5Dopen2(rf, "x", mp_h5p_default())
        var back = [Float](repeating: 0, count: 6)
        #expect(H5Dread(rd, mp_h5t_native_float(), mp_h5s_all(), mp_h5s_all(), mp_h5p_default(), &back) >= 0)
        H5Dclose(rd); H5Fclose(rf)
        #expect(back == values)
    }

    @Test func imageCodecVersions() {
        #expect(png_access_version_number() >= 10600)
        #expect(String(cString: mp_png_libpng_ver_string()).hasPrefix("1.6"))
        #expect(mp_png_color_type_rgba() == 6 && mp_png_color_type_palette() == 3)
        #expect(mp_jpeg_lib_version() >= 62)
    }

    @Test func oneDNNVersionAndArgumentGetters() {
        let v = dnnl_version().pointee
        #expect(v.major == 2 && v.minor >= 6)
        #expect(mp_dnnl_arg_src() == 1 && mp_dnnl_arg_dst() == 17 && mp_dnnl_arg_weights() == 33)
        #expect(mp_dnnl_max_ndims() == 12)
        #expect(mp_dnnl_set_threads(1) == 0)
        #expect(mp_dnnl_get_threads() == 1)
    }
}
