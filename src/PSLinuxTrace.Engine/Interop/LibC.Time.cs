using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

internal static unsafe partial class LibC
{
    internal const int CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1, CLOCK_BOOTTIME = 7;

    [StructLayout(LayoutKind.Sequential)]
    internal struct Timespec   // struct timespec
    {
        public long tv_sec;
        public long tv_nsec;
    }

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int clock_gettime(int clockid, Timespec* tp);

    /// <summary>clock_gettime in nanoseconds.</summary>
    internal static long ClockNs(int clockid)
    {
        Timespec ts;
        Errno.Check(clock_gettime(clockid, &ts), "clock_gettime");
        return ts.tv_sec * 1_000_000_000L + ts.tv_nsec;
    }
}
