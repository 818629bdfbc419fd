using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

/// <summary>perf_event_open(2) for tracepoint events, and the ioctls that attach a BPF program to one.</summary>
internal static unsafe partial class PerfEvent
{
    internal const uint PERF_TYPE_TRACEPOINT = 2;
    internal const ulong PERF_SAMPLE_RAW = 1 << 10;
    internal const ulong PERF_FLAG_FD_CLOEXEC = 1 << 3;
    // _IO('$', 0), _IO('$', 1), _IOW('$', 8, __u32) from include/uapi/linux/perf_event.h
    internal const ulong PERF_EVENT_IOC_ENABLE = 0x2400, PERF_EVENT_IOC_DISABLE = 0x2401, PERF_EVENT_IOC_SET_BPF = 0x40042408;

    /// <summary>struct perf_event_attr up to PERF_ATTR_SIZE_VER0 (64 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct perf_event_attr
    {
        public uint type;
        public uint size;
        public ulong config;
        public ulong sample_period;               // union with sample_freq
        public ulong sample_type;
        public ulong read_format;
        public ulong flags;                       // disabled:1, inherit:1, ... bit fields
        public uint wakeup_events;                // union with wakeup_watermark
        public uint bp_type;
        public ulong config1;
    }

    private static long Nr => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 298,
        Architecture.Arm64 => 241,
        var a => throw new UnsupportedFeatureException($"perf_event_open on {a}"),
    };

    [LibraryImport(LibC.Lib, EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall5(long number, void* attr, long pid, long cpu, long groupFd, long flags);

    /// <summary>perf_event_open(attr, pid, cpu, group_fd, flags); -1 with errno on failure.</summary>
    internal static int Open(ref perf_event_attr attr, int pid, int cpu, int groupFd, ulong flags)
    {
        attr.size = (uint)sizeof(perf_event_attr);
        fixed (perf_event_attr* p = &attr)
            return (int)syscall5(Nr, p, pid, cpu, groupFd, (long)flags);
    }
}
