// maskpilot-mpi-tests: multi-rank checks of the CMPI module, run by `make test` under `mpirun -np 2`.
// Exercises what the Distributed target will rely on: init, rank/size, blocking and non-blocking all-reduce, broadcast.
import CMPI
import Foundation

var failures: [String] = []
var passes = 0
@MainActor func check(_ ok: Bool, _ what: String) { if ok { passes += 1 } else { failures.append(what) } }

var provided: Int32 = 0
guard MPI_Init_thread(nil, nil, mp_mpi_thread_funneled(), &provided) == mp_mpi_success() else {
    FileHandle.standardError.write("MPI_Init_thread failed\n".data(using: .utf8)!)
    exit(1)
}
let world = mp_mpi_comm_world()
var rank: Int32 = 0, size: Int32 = 0
MPI_Comm_rank(world, &rank)
MPI_Comm_size(world, &size)
check(size >= 2, "world size \(size) ≥ 2 (run under mpirun -np 2)")

// Blocking all-reduce: Σ over ranks of (rank + 1)·[1, 2, 3].
var send: [Float] = [1, 2, 3].map { $0 * Float(rank + 1) }
var recv = [Float](repeating: 0, count: 3)
MPI_Allreduce(&send, &recv, 3, mp_mpi_float(), mp_mpi_sum(), world)
let total = Float(size * (size + 1) / 2)
check(recv == [total, 2 * total, 3 * total], "MPI_Allreduce sum: got \(recv)")

// Non-blocking in-place all-reduce completed by MPI_Test polling (how gradient buckets will overlap).
var bucket = [Float](repeating: Float(rank), count: 1000)
var request = mp_mpi_request_null()
bucket.withUnsafeMutableBufferPointer { buf in
    _ = MPI_Iallreduce(mp_mpi_in_place(), buf.baseAddress, 1000, mp_mpi_float(), mp_mpi_sum(), world, &request)
    var done: Int32 = 0
    while done == 0 { MPI_Test(&request, &done, mp_mpi_status_ignore()) }
}
let rankSum = Float(size * (size - 1) / 2)
check(bucket.allSatisfy { $0 == rankSum }, "MPI_Iallreduce in place: got \(bucket[0])")

// Broadcast from rank 0.
var seed: UInt64 = rank == 0 ? 0xDEAD_BEEF : 0
MPI_Bcast(&seed, 1, mp_mpi_uint64(), 0, world)
check(seed == 0xDEAD_BEEF, "MPI_Bcast: got \(seed)")

// Every rank agrees on the number of failures before reporting.
var localFail = Int32(failures.count), anyFail: Int32 = 0
MPI_Allreduce(&localFail, &anyFail, 1, mp_mpi_int(), mp_mpi_max(), world)
for f in failures { print("rank \(rank): FAILED \(f)") }
if rank == 0 { print("mpi: \(passes) passed, \(Int(anyFail)) failed") }
MPI_Finalize()
exit(anyFail == 0 ? 0 : 1)
