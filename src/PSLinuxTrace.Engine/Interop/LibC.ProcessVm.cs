using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

// process_vm_readv(2)/process_vm_writev(2): bulk copies between address spaces, no ptrace stop needed
// (only PTRACE_MODE_ATTACH_REALCREDS permission). Partial reads stop at the first unmapped page.
internal static partial class LibC
{
    [LibraryImport(Lib, SetLastError = true)]
    internal static unsafe partial nint process_vm_readv(int pid, IoVec* local_iov, nuint liovcnt, IoVec* remote_iov, nuint riovcnt, nuint flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static unsafe partial nint process_vm_writev(int pid, IoVec* local_iov, nuint liovcnt, IoVec* remote_iov, nuint riovcnt, nuint flags);
}
