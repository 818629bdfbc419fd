namespace PSLinuxTrace.Engine.Interop;

// seccomp(2) and classic BPF (linux/seccomp.h, linux/filter.h, linux/bpf_common.h). The tracer never calls
// seccomp itself: it makes the tracee call it (syscall injection at the launcher's execve entry).
internal static partial class LibC
{
    internal const int SECCOMP_SET_MODE_FILTER = 1;
    internal const uint SECCOMP_RET_ALLOW = 0x7fff0000, SECCOMP_RET_TRACE = 0x7ff00000;
    internal const int PR_SET_NO_NEW_PRIVS = 38;

    // BPF instruction classes and modes
    internal const ushort BPF_LD = 0x00, BPF_JMP = 0x05, BPF_RET = 0x06, BPF_W = 0x00, BPF_ABS = 0x20, BPF_JEQ = 0x10, BPF_K = 0x00;

    // struct seccomp_data: int nr (offset 0); __u32 arch (4); __u64 instruction_pointer (8); __u64 args[6] (16)
    internal const int SeccompDataNr = 0, SeccompDataArch = 4;

    /// <summary>struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; } as 8 little-endian bytes.</summary>
    internal static void WriteSockFilter(Span<byte> to, ushort code, byte jt, byte jf, uint k)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(to, code);
        to[2] = jt;
        to[3] = jf;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(to[4..], k);
    }
}
