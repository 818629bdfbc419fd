using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Syscalls;

namespace PSLinuxTrace.Engine.Tracing;

/// <summary>
/// The classic-BPF seccomp program strace --seccomp-bpf installs: SECCOMP_RET_TRACE for the selected
/// calls (and for any other architecture, so nothing escapes), SECCOMP_RET_ALLOW for the rest.
/// </summary>
internal static class SeccompFilterProgram
{
    // jt/jf are 8-bit: a linear list of compares reaches the final RET_TRACE only within 255 instructions.
    private const int MaxListed = 250;

    public static bool CanBuild(SyscallFilter filter) => filter.Numbers.Count is > 0 and <= MaxListed;

    public static byte[] Build(SyscallFilter filter, ISyscallArchitecture arch)
    {
        var numbers = filter.Numbers;
        if (!CanBuild(filter)) throw new ArgumentException("Too many system calls for a linear seccomp filter.");
        int n = numbers.Count;
        int count = 3 + n + 2;
        var program = new byte[count * 8];
        int traceIndex = count - 1, allowIndex = count - 2;
        Span<byte> p = program;
        LibC.WriteSockFilter(p[0..], LibC.BPF_LD | LibC.BPF_W | LibC.BPF_ABS, 0, 0, LibC.SeccompDataArch);
        LibC.WriteSockFilter(p[8..], LibC.BPF_JMP | LibC.BPF_JEQ | LibC.BPF_K, 0, (byte)(traceIndex - 2), arch.AuditArch);
        LibC.WriteSockFilter(p[16..], LibC.BPF_LD | LibC.BPF_W | LibC.BPF_ABS, 0, 0, LibC.SeccompDataNr);
        for (int i = 0; i < n; i++)
        {
            int at = 3 + i;
            LibC.WriteSockFilter(p[(at * 8)..], LibC.BPF_JMP | LibC.BPF_JEQ | LibC.BPF_K, (byte)(traceIndex - at - 1), 0, (uint)numbers[i]);
        }
        LibC.WriteSockFilter(p[(allowIndex * 8)..], LibC.BPF_RET | LibC.BPF_K, 0, 0, LibC.SECCOMP_RET_ALLOW);
        LibC.WriteSockFilter(p[(traceIndex * 8)..], LibC.BPF_RET | LibC.BPF_K, 0, 0, LibC.SECCOMP_RET_TRACE);
        return program;
    }
}
