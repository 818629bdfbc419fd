using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

// sched_setaffinity(2): a tracer that runs on its tracee's CPU avoids a cross-CPU wake-up per ptrace stop
// (55-105 µs on these VMs against 7 µs on one CPU; see shared/PERFORMANCE.md).
internal static partial class LibC
{
    [LibraryImport(Lib, SetLastError = true)]
    internal static unsafe partial int sched_setaffinity(int pid, nuint cpusetsize, ulong* mask);

    [LibraryImport(Lib, SetLastError = true)]
    internal static unsafe partial int sched_getaffinity(int pid, nuint cpusetsize, ulong* mask);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int sched_getcpu();
}
