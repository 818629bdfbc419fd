using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Ptrace;

/// <summary>
/// How a system call is made, per architecture, for injecting one into a stopped thread: which
/// instruction enters the kernel, which registers carry the number, the arguments and the result, and
/// how a syscall stop is turned into another call. x86_64 today (<see cref="SyscallAbiX64"/>); arm64
/// brings its own registers and `svc #0`.
/// </summary>
public interface ISyscallAbi
{
    /// <summary>The bytes of the instruction that enters the kernel (x86_64: syscall, 0f 05).</summary>
    ReadOnlySpan<byte> SyscallInstruction { get; }

    /// <summary>Registers that run <paramref name="number"/>(<paramref name="args"/>) from the syscall instruction at <paramref name="at"/>, with no syscall restart.</summary>
    UserRegsX64 CallAt(UserRegsX64 saved, ulong at, long number, ReadOnlySpan<ulong> args);

    /// <summary>
    /// Registers that make a thread at a syscall stop run <paramref name="number"/>(<paramref name="args"/>)
    /// instead: at an entry stop the pending call is replaced; at an exit stop the thread is rewound over the
    /// syscall instruction to make a new one.
    /// </summary>
    UserRegsX64 ReplaceAtStop(UserRegsX64 saved, bool atEntry, long number, ReadOnlySpan<ulong> args);

    /// <summary>Registers that make a thread at a syscall-entry stop make the same call again from the start (after one was injected there).</summary>
    UserRegsX64 Redo(UserRegsX64 atEntry);

    /// <summary>The value a finished call returned (-errno on failure).</summary>
    long Result(UserRegsX64 regs);

    ulong InstructionPointer(UserRegsX64 regs);
}

/// <summary>x86_64 (System V ABI, A.2.1): number in rax, arguments in rdi, rsi, rdx, r10, r8, r9, result in rax.</summary>
public sealed class SyscallAbiX64 : ISyscallAbi
{
    public static SyscallAbiX64 Instance { get; } = new();
    private static readonly byte[] Syscall = [0x0f, 0x05];

    public ReadOnlySpan<byte> SyscallInstruction => Syscall;

    public UserRegsX64 CallAt(UserRegsX64 saved, ulong at, long number, ReadOnlySpan<ulong> args)
    {
        var r = WithArguments(saved, args);
        r.rax = (ulong)number;
        r.orig_rax = ulong.MaxValue; // -1: not in a syscall, so the kernel restarts nothing on resume
        r.rip = at;
        return r;
    }

    public UserRegsX64 ReplaceAtStop(UserRegsX64 saved, bool atEntry, long number, ReadOnlySpan<ulong> args)
    {
        var r = WithArguments(saved, args);
        r.orig_rax = (ulong)number;
        r.rax = (ulong)number;
        if (!atEntry) r.rip -= (ulong)Syscall.Length;
        return r;
    }

    public UserRegsX64 Redo(UserRegsX64 atEntry)
    {
        var r = atEntry;
        r.rip -= (ulong)Syscall.Length;
        r.rax = atEntry.orig_rax;
        return r;
    }

    public long Result(UserRegsX64 regs) => (long)regs.rax;
    public ulong InstructionPointer(UserRegsX64 regs) => regs.rip;

    private static UserRegsX64 WithArguments(UserRegsX64 r, ReadOnlySpan<ulong> a)
    {
        if (a.Length > 6) throw new ArgumentException("A system call takes at most six arguments.");
        Span<ulong> v = stackalloc ulong[6];
        a.CopyTo(v);
        r.rdi = v[0]; r.rsi = v[1]; r.rdx = v[2]; r.r10 = v[3]; r.r8 = v[4]; r.r9 = v[5];
        return r;
    }
}
