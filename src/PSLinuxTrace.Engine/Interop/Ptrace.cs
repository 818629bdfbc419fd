using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

/// <summary>
/// Typed ptrace requests, each failure through the one errno check. Every call must come from the thread
/// that seized the tracee (ptrace's rule): Ptrace/PtraceSession is their one caller and enforces it.
/// </summary>
internal static unsafe class Ptrace
{
    private static void Check(long r, string what, int tid)
    {
        if (r == -1) throw Errno.ToException(Errno.Last, what, tid);
    }

    public static void Interrupt(int tid) => Check(LibC.ptrace(LibC.PTRACE_INTERRUPT, tid, 0, 0), "ptrace(PTRACE_INTERRUPT)", tid);
    public static void SetOptions(int tid, int options) => Check(LibC.ptrace(LibC.PTRACE_SETOPTIONS, tid, 0, options), "ptrace(PTRACE_SETOPTIONS)", tid);
    public static void Cont(int tid, int signal = 0) => Check(LibC.ptrace(LibC.PTRACE_CONT, tid, 0, signal), "ptrace(PTRACE_CONT)", tid);
    public static void Syscall(int tid, int signal = 0) => Check(LibC.ptrace(LibC.PTRACE_SYSCALL, tid, 0, signal), "ptrace(PTRACE_SYSCALL)", tid);
    public static void SingleStep(int tid, int signal = 0) => Check(LibC.ptrace(LibC.PTRACE_SINGLESTEP, tid, 0, signal), "ptrace(PTRACE_SINGLESTEP)", tid);
    public static void Listen(int tid) => Check(LibC.ptrace(LibC.PTRACE_LISTEN, tid, 0, 0), "ptrace(PTRACE_LISTEN)", tid);

    /// <summary>Detaches; false when the tracee is already gone (ESRCH), which is not an error for cleanup.</summary>
    public static bool Detach(int tid, int signal = 0)
    {
        if (LibC.ptrace(LibC.PTRACE_DETACH, tid, 0, signal) == 0) return true;
        int e = Errno.Last;
        if (e == Errno.ESRCH) return false;
        throw Errno.ToException(e, "ptrace(PTRACE_DETACH)", tid);
    }

    public static ulong GetEventMsg(int tid)
    {
        ulong msg;
        Check(LibC.ptrace(LibC.PTRACE_GETEVENTMSG, tid, 0, (nint)(&msg)), "ptrace(PTRACE_GETEVENTMSG)", tid);
        return msg;
    }

    public static UserRegsX64 GetRegs(int tid)
    {
        UserRegsX64 regs;
        Check(LibC.ptrace(LibC.PTRACE_GETREGS, tid, 0, (nint)(&regs)), "ptrace(PTRACE_GETREGS)", tid);
        return regs;
    }

    public static void SetRegs(int tid, UserRegsX64 regs) =>
        Check(LibC.ptrace(LibC.PTRACE_SETREGS, tid, 0, (nint)(&regs)), "ptrace(PTRACE_SETREGS)", tid);

    /// <summary>struct user_fpregs_struct (the fxsave area, 512 bytes).</summary>
    public static byte[] GetFpRegs(int tid)
    {
        var buffer = new byte[512];
        fixed (byte* p = buffer) Check(LibC.ptrace(LibC.PTRACE_GETFPREGS, tid, 0, (nint)p), "ptrace(PTRACE_GETFPREGS)", tid);
        return buffer;
    }

    /// <summary>A register set by NT_* type (NT_X86_XSTATE: the XSAVE area); null when the kernel does not have it.</summary>
    public static byte[]? GetRegSet(int tid, int type, int maxSize = 16384)
    {
        var buffer = new byte[maxSize];
        fixed (byte* p = buffer)
        {
            var iov = new IoVec { iov_base = (nint)p, iov_len = (nuint)buffer.Length };
            if (LibC.ptrace(LibC.PTRACE_GETREGSET, tid, type, (nint)(&iov)) == -1)
            {
                int e = Errno.Last;
                if (e is Errno.EINVAL or Errno.ENODEV) return null;
                throw Errno.ToException(e, "ptrace(PTRACE_GETREGSET)", tid);
            }
            Array.Resize(ref buffer, (int)iov.iov_len);
        }
        return buffer;
    }

    /// <summary>siginfo of the current signal-delivery stop (128 bytes), or null outside one.</summary>
    public static byte[]? GetSigInfo(int tid)
    {
        var buffer = new byte[128];
        fixed (byte* p = buffer)
            if (LibC.ptrace(LibC.PTRACE_GETSIGINFO, tid, 0, (nint)p) == -1) return null;
        return buffer;
    }

    public static void PokeData(int pid, ulong address, ulong value) =>
        Check(LibC.ptrace(LibC.PTRACE_POKEDATA, pid, (nint)address, (nint)value), "ptrace(PTRACE_POKEDATA)", pid);
}

/// <summary>struct ptrace_syscall_info (include/uapi/linux/ptrace.h), decoded.</summary>
internal readonly record struct SyscallInfo(byte Op, uint Arch, ulong InstructionPointer, ulong StackPointer,
    ulong Number, ulong Arg0, ulong Arg1, ulong Arg2, ulong Arg3, ulong Arg4, ulong Arg5, long ReturnValue, bool IsError, uint SeccompData)
{
    public bool IsEntry => Op == LibC.PTRACE_SYSCALL_INFO_ENTRY;
    public bool IsExit => Op == LibC.PTRACE_SYSCALL_INFO_EXIT;
    public bool IsSeccomp => Op == LibC.PTRACE_SYSCALL_INFO_SECCOMP;
    public ulong[] Args => new[] { Arg0, Arg1, Arg2, Arg3, Arg4, Arg5 };
}

internal static unsafe class PtraceSyscallInfo
{
    /// <summary>PTRACE_GET_SYSCALL_INFO (Linux 5.3+): what kind of syscall stop this is, with the number and arguments or the result.</summary>
    public static SyscallInfo Get(int tid)
    {
        byte* b = stackalloc byte[96];
        new Span<byte>(b, 96).Clear();
        long n = LibC.ptrace(LibC.PTRACE_GET_SYSCALL_INFO, tid, 96, (nint)b);
        if (n < 0) throw Errno.ToException(Errno.Last, "ptrace(PTRACE_GET_SYSCALL_INFO)", tid);
        var s = new ReadOnlySpan<byte>(b, 96);
        ulong U(int o) => System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(b + o, 8));
        byte op = s[0];
        uint arch = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(s[4..]);
        ulong ip = U(8), sp = U(16);
        return op switch
        {
            LibC.PTRACE_SYSCALL_INFO_ENTRY => new SyscallInfo(op, arch, ip, sp, U(24), U(32), U(40), U(48), U(56), U(64), U(72), 0, false, 0),
            LibC.PTRACE_SYSCALL_INFO_SECCOMP => new SyscallInfo(op, arch, ip, sp, U(24), U(32), U(40), U(48), U(56), U(64), U(72), 0, false,
                System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(s[80..])),
            LibC.PTRACE_SYSCALL_INFO_EXIT => new SyscallInfo(op, arch, ip, sp, 0, 0, 0, 0, 0, 0, 0, (long)U(24), s[32] != 0, 0),
            _ => new SyscallInfo(op, arch, ip, sp, 0, 0, 0, 0, 0, 0, 0, 0, false, 0),
        };
    }
}
