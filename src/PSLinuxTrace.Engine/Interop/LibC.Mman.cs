using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

internal static unsafe partial class LibC
{
    internal const int PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1;
    internal static readonly nint MAP_FAILED = -1;

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int munmap(nint addr, nuint length);

    [LibraryImport(Lib)]
    internal static partial long sysconf(int name);

    internal const int _SC_PAGESIZE = 30, _SC_NPROCESSORS_CONF = 83;
}
