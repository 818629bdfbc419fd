using System.Buffers.Binary;
using PSLinuxTrace.Engine.Bpf;
using PSLinuxTrace.Engine.Syscalls;

namespace PSLinuxTrace.Engine.Tracing.Bpf;

/// <summary>
/// The user-space half of src/bpf/syscalls.bpf.c's maps: the config (kernel structure offsets from
/// BTF, then what to do) and, per system call number, whether to report it and which arguments to
/// copy, when and how much. The copy plan comes from the decoder's own signatures, so the kernel
/// copies exactly what the decoder will read. Layouts mirror the C structs; keep them in step.
/// </summary>
internal static class BpfSyscallObject
{
    public const string Resource = "syscalls.bpf.o";
    public const int MaxNumber = 1024;          // MAX_NR
    public const int ConfigSize = 128;          // struct config
    public const int SpecSize = 56;             // struct sc_spec
    public const int InflightSize = 104;        // struct inflight
    public const int TotalsSize = 24;           // struct totals
    /// <summary>BUF_MAX: the largest single copy, and so the largest -StringLimit the engine serves.</summary>
    public const int MaxCopy = 32768;
    public const int PathMax = 4096;            // what the decoder reads of a path

    // struct sc_spec flags
    private const uint ScSelected = 1, ScTrack = 2, ScRetFd = 4, ScNoRetry = 8, ScEntryCopies = 16, ScExitCopies = 32, ScFds = 64;
    // struct arg_spec kinds, times and flags
    private const byte AkStr = 1, AkBuf = 2, AkBufArg = 3, AkBufRet = 4, AkArgv = 5, AkFd = 6;
    private const byte WEntry = 0, WExit = 1, AfOutput = 1;

    // counters (C_*)
    public const int CounterLost = 0, CounterEntryLost = 1, CounterTracedFull = 2, CounterInflightFull = 3, CounterFaults = 4, CounterCount = 8;

    public const uint TaskSuppress = 1;         // TF_SUPPRESS

    // The running kernel's offsets do not change while we run: read BTF (some 20 ms) once per process.
    private static uint[]? _kernelOffsets;

    /// <summary>struct config: BTF offsets, then the switches and the architecture's process-call numbers.</summary>
    public static byte[] BuildConfig(SyscallTraceOptions o, bool summary)
    {
        ISyscallArchitecture arch = o.Architecture;
        uint[] k = _kernelOffsets ??= KernelOffsets(Btf.LoadVmlinux());
        uint[] v =
        [
            .. k[..20],
            o.FollowForks ? 1u : 0u,
            o.FailedOnly ? 1u : 0u,
            summary ? 1u : 0u,
            (uint)arch.Number("execve"), (uint)arch.Number("execveat"), (uint)arch.Number("clone"),
            (uint)arch.Number("clone3"), (uint)arch.Number("fork"), (uint)arch.Number("vfork"),
            .. k[20..],
        ];
        byte[] bytes = new byte[ConfigSize];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), v[i]);
        return bytes;
    }

    /// <summary>The struct member offsets of struct config, in its order (the switches go between the first 20 and the last 2).</summary>
    private static uint[] KernelOffsets(Btf btf)
    {
        uint groupExecTask;
        try { groupExecTask = btf.MemberOffset("signal_struct", "group_exec_task"); }
        catch (UnsupportedFeatureException) { groupExecTask = 0; }   // before Linux 5.17 (group_exit_task): the replaced leader's exit shows
        return
        [
            btf.MemberOffset("task_struct", "pid"),
            btf.MemberOffset("task_struct", "tgid"),
            btf.MemberOffset("task_struct", "exit_code"),
            btf.MemberOffset("task_struct", "exit_signal"),
            btf.MemberOffset("task_struct", "files"),
            btf.MemberOffset("task_struct", "fs"),
            btf.MemberOffset("task_struct", "signal"),
            groupExecTask,
            btf.MemberOffset("files_struct", "fdt"),
            btf.MemberOffset("fdtable", "max_fds"),
            btf.MemberOffset("fdtable", "fd"),
            btf.MemberOffset("file", "f_inode"),
            btf.MemberOffset("inode", "i_ino"),
            btf.MemberOffset("inode", "i_sb"),
            btf.MemberOffset("super_block", "s_dev"),
            btf.MemberOffset("fs_struct", "pwd"),
            btf.MemberOffset("path", "dentry"),
            btf.MemberOffset("dentry", "d_inode"),
            btf.MemberOffset("linux_binprm", "file"),
            btf.MemberOffset("linux_binprm", "filename"),
            btf.MemberOffset("task_struct", "mm"),
            btf.MemberOffset("mm_struct", "arg_start"),
        ];
    }

    /// <summary>
    /// struct sc_spec for system call <paramref name="number"/>: reported when the filter selects it;
    /// its arguments copied as the decoder will read them (none for -Summary, which counts only).
    /// With -FailedOnly, input memory is copied at exit instead (only failed calls are reported, and a
    /// failed call changed none of its input memory), so no entry record is ever written.
    /// </summary>
    public static byte[] BuildSpec(int number, SyscallTraceOptions o, bool summary)
    {
        byte[] spec = new byte[SpecSize];
        ISyscallArchitecture arch = o.Architecture;
        string name = arch.Name(number);
        SyscallFilter filter = o.Filter ?? SyscallFilter.All(arch);
        uint flags = 0;
        if (filter.Matches(number) && !name.StartsWith("syscall_", StringComparison.Ordinal)) flags |= ScSelected;
        if (name is "clone" or "clone3" or "fork" or "vfork") flags |= ScTrack;   // the fork record reads their flags
        bool copies = (flags & ScSelected) != 0 && !summary && o.DecodeArguments;
        if (copies && SyscallSignatures.ReturnsFd(name)) flags |= ScRetFd;
        if (name is "execve" or "execveat") flags |= ScNoRetry;
        ArgSpec[]? args = copies ? SyscallSignatures.Get(name) : null;
        int stringLimit = Math.Min(o.StringLimit, MaxCopy);
        for (int i = 0; args is not null && i < args.Length && i < 6; i++)
        {
            var (kind, when, lenArg, f, max) = Plan(args[i], stringLimit);
            if (kind is not (0 or AkFd) && when == WEntry && o.FailedOnly) when = WExit;
            Span<byte> a = spec.AsSpan(8 + 8 * i, 8);
            a[0] = kind; a[1] = when; a[2] = lenArg; a[3] = f;
            BinaryPrimitives.WriteUInt32LittleEndian(a[4..], (uint)max);
            // So the kernel skips, for most calls, work that would find nothing to do.
            flags |= kind == AkFd ? ScFds : kind == 0 ? 0 : when == WEntry ? ScEntryCopies : ScExitCopies;
        }
        BinaryPrimitives.WriteUInt32LittleEndian(spec, flags);
        return spec;
    }

    /// <summary>How to copy one argument: what each of the decoder's readers reads (SyscallDecoder.cs).</summary>
    private static (byte Kind, byte When, byte LenArg, byte Flags, int Max) Plan(ArgSpec a, int stringLimit) => a.Kind switch
    {
        ArgKind.Path => (AkStr, WEntry, 0, 0, PathMax),
        ArgKind.InBuf => (AkBufArg, WEntry, (byte)a.LengthArg, 0, stringLimit),
        ArgKind.OutBuf => (AkBufRet, WExit, 0, AfOutput, stringLimit),
        ArgKind.SockAddr => (AkBufArg, WEntry, (byte)a.LengthArg, 0, 128),
        ArgKind.SockAddrOut => (AkBuf, WExit, 0, AfOutput, 128),
        ArgKind.WaitStatusOut => (AkBuf, WExit, 0, AfOutput, 4),
        ArgKind.PipeFdsOut => (AkBuf, WExit, 0, AfOutput, 8),
        ArgKind.SigAction => (AkBuf, WEntry, 0, 0, 32),
        ArgKind.StatOut => (AkBuf, WExit, 0, AfOutput, 56),
        ArgKind.Clone3Args => (AkBuf, WEntry, 0, 0, 64),
        ArgKind.Argv => (AkArgv, WEntry, 0, 0, PathMax),
        ArgKind.Envp => (AkBuf, WEntry, 0, 0, 8 * 512),
        ArgKind.Fd or ArgKind.DirFd => (AkFd, WEntry, 0, 0, 0),
        _ => (0, 0, 0, 0, 0),
    };
}
