using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

// process_vm_readv(2)/process_vm_writev(2): bulk copies between address spaces, no ptrace stop needed
// (only PTRACE_MODE_ATTACH_REALCREDS permission). Partial reads stop at the first unmapped page.
internal static partial class LibC
{
    [LibraryImport(Lib, SetLastError = true)]
    internal static unsafe partial nint process_vm_readv(int pid, IoVec* local_iov, nuint liovcnt, IoVec* remote_iov, nuint riovcnt, nuint flags);

    /// <summary>
    /// One process_vm_readv of <c>local.Length</c> bytes at <paramref name="remote"/> in <paramref name="pid"/>:
    /// the bytes copied (short at the first unreadable page), or -1 with errno set.
    /// </summary>
    internal static unsafe nint ProcessVmRead(int pid, Span<byte> local, ulong remote)
    {
        fixed (byte* p = local)
        {
            var l = new IoVec { iov_base = (nint)p, iov_len = (nuint)local.Length };
            var r = new IoVec { iov_base = (nint)remote, iov_len = (nuint)local.Length };
            return process_vm_readv(pid, &l, 1, &r, 1, 0);
        }
    }

    [LibraryImport(Lib, SetLastError = true)]
    internal static unsafe partial nint process_vm_writev(int pid, IoVec* local_iov, nuint liovcnt, IoVec* remote_iov, nuint riovcnt, nuint flags);
}
