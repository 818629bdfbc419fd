namespace PSLinuxTrace.Engine.Model;

/// <summary>Reads the dumped process's memory at an address: how many contiguous bytes were there (a handle-free reader the engine supplies).</summary>
internal delegate int MemoryReader(ulong address, Span<byte> buffer);

/// <summary>
/// A Linux ELF core file as Read-CoreDump writes it. Memory is not copied into the object:
/// <see cref="ReadMemory"/> and the helpers read it from the core file (or, for file-backed pages
/// the core leaves out, from the mapped file) when called, so the object holds no open handle and
/// survives serialization (remoting drops the methods, not the data).
/// </summary>
public sealed class CoreDump
{
    internal MemoryReader? Memory { get; init; }

    public required string Path { get; init; }
    public int Pid { get; init; }
    public int ParentId { get; init; }
    public required string ProcessName { get; init; }
    public required string CommandLine { get; init; }
    public uint UserId { get; init; }
    public uint GroupId { get; init; }
    /// <summary>The signal that ended the process (SIGSEGV), or null when the core was not made by a signal (gcore, snapshots).</summary>
    public string? Signal { get; init; }
    public int SignalNumber { get; init; }
    /// <summary>si_code of the signal (SEGV_MAPERR = 1, SI_USER = 0, SI_TKILL = -6 ...).</summary>
    public int? SignalCode { get; init; }
    public string? SignalCodeName { get; init; }
    /// <summary>si_addr for SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGTRAP: the faulting address.</summary>
    public ulong? FaultAddress { get; init; }
    /// <summary>The pid that sent the signal, for signals sent by kill/tgkill/abort.</summary>
    public int? SenderPid { get; init; }
    public string? Executable { get; init; }
    public required CoreThread[] Threads { get; init; }
    public required CoreMapping[] Mappings { get; init; }
    public required AuxvEntry[] Auxv { get; init; }
    public required ModuleBuildId[] BuildIds { get; init; }
    /// <summary>True when the file is shorter than its program headers say (memory past the end is missing).</summary>
    public bool IsTruncated { get; init; }
    /// <summary>Who wrote the core, when known: Kernel, Gdb (gcore) or PSLinuxTrace (Save-ProcessSnapshot).</summary>
    public string? Producer { get; init; }
    /// <summary>The size of the file at <see cref="Path"/>, compressed or not.</summary>
    public long FileSize { get; init; }
    /// <summary>The size of the ELF core itself: <see cref="FileSize"/>, or what a compressed file decompresses to.</summary>
    public long CoreSize { get; init; }
    /// <summary>How the file is compressed ("zstd", "lz4", "xz", as systemd-coredump writes them), or null for a plain ELF core.</summary>
    public string? Compression { get; init; }
    public required string[] Warnings { get; init; }

    /// <summary>
    /// The crash's signature, for grouping cores by crash (Group-Object Signature): the signal and the
    /// crashing thread's top frames as <c>build-id+0xaddress function</c>, without the abort/assert/raise
    /// machinery and the signal trampoline; stable across hosts, pids and ASLR. Null for a core no signal
    /// ended (gcore, Save-ProcessSnapshot). The format is in Read-CoreDump's help.
    /// </summary>
    public string? Signature { get; init; }
    /// <summary>The first 16 hex digits of the SHA-256 of <see cref="Signature"/>, or null.</summary>
    public string? SignatureHash { get; init; }

    public CoreThread? CrashingThread => Threads.FirstOrDefault(t => t.IsCrashingThread);

    /// <summary>Reads <paramref name="length"/> bytes of the process's memory at <paramref name="address"/>.</summary>
    public byte[] ReadMemory(ulong address, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length > 256 << 20) throw new ArgumentOutOfRangeException(nameof(length), "at most 256 MiB per call");
        var buffer = new byte[length];
        int got = Reader()(address, buffer);
        if (got < length)
            throw new BadInputFormatException($"Memory 0x{address + (ulong)got:x} is not in the core file {Path} (and no mapped file supplies it).");
        return buffer;
    }

    /// <summary>The 8-byte pointer at <paramref name="address"/>.</summary>
    public ulong ReadPointer(ulong address) => BitConverter.ToUInt64(ReadMemory(address, 8), 0);

    /// <summary>The NUL-terminated UTF-8 string at <paramref name="address"/> (at most <paramref name="maxLength"/> bytes).</summary>
    public string ReadString(ulong address, int maxLength = 4096)
    {
        var buffer = new byte[Math.Clamp(maxLength, 1, 1 << 20)];
        int got = Reader()(address, buffer);
        if (got == 0) throw new BadInputFormatException($"Memory 0x{address:x} is not in the core file {Path}.");
        int nul = Array.IndexOf(buffer, (byte)0, 0, got);
        return System.Text.Encoding.UTF8.GetString(buffer, 0, nul < 0 ? got : nul);
    }

    private MemoryReader Reader() => Memory ?? throw new InvalidOperationException("This CoreDump object was deserialized; open the core again with Read-CoreDump to read memory.");

    public override string ToString() => $"{ProcessName}[{Pid}] {Signal ?? "no signal"} ({Threads.Length} threads) {Path}";
}

/// <summary>One thread of a core.</summary>
public sealed record CoreThread(
    int Tid,
    bool IsCrashingThread,
    string? Signal,
    int SignalNumber,
    X64Registers Registers,
    StackFrame[] Frames)
{
    /// <summary>The thread's name (its comm: pthread_setname_np's), for live processes; null for cores, which do not record it.</summary>
    public string? Name { get; init; }

    public override string ToString() => $"Thread {Tid}{(Name is null ? "" : $" ({Name})")}{(IsCrashingThread ? " (crashed)" : "")}: {(Frames.Length > 0 ? Frames[0].ToString() : $"0x{Registers.Rip:x}")}";
}

/// <summary>
/// One frame of a backtrace, like a line of gdb's bt: every stack the module prints (cores, snapshots,
/// live processes, syscall stacks) is made of these. An inlined call is a frame of its own (IsInlined,
/// at its caller's pc, Offset 0); a function a tail call took off the stack has Method "TailCall".
/// Symbol+Offset always points at the instruction: Symbol is gdb's (DWARF) name where it starts where
/// the symbol-table entry holding the pc starts, else that entry's name (main.cold).
/// </summary>
public sealed record StackFrame(
    int Index,
    ulong InstructionPointer,
    ulong StackPointer,
    string? Symbol,
    ulong Offset,
    string? ModulePath,
    string Method)
{
    /// <summary>The source file of the frame's code (from the module's DWARF line table), or null when unknown.</summary>
    public string? File { get; init; }
    /// <summary>1-based line in <see cref="File"/>, or null.</summary>
    public int? Line { get; init; }
    /// <summary>1-based column, or null when the compiler gave none.</summary>
    public int? Column { get; init; }
    /// <summary>True for a frame of inlined code: it shares its pc with the frames after it, down to the real function's.</summary>
    public bool IsInlined { get; init; }
    /// <summary>Native code (ELF modules, unwound by us), a managed .NET method, or a .NET runtime transition marker.</summary>
    public StackFrameKind Kind { get; init; }
    /// <summary>For a managed frame: the IL offset of its call or instruction in the method, when the runtime maps it.</summary>
    public int? ILOffset { get; init; }

    public override string ToString() =>
        $"#{Index} 0x{InstructionPointer:x16} in {(Symbol is null ? "??" : Offset == 0 ? Symbol : $"{Symbol}+0x{Offset:x}")}{(IsInlined ? " (inlined)" : "")}{(Kind == StackFrameKind.Native ? "" : $" [{Kind}]")}" +
        $"{(File is null ? "" : $" at {File}{(Line is null ? "" : $":{Line}")}")}{(ModulePath is null ? "" : " in " + ModulePath)}";
}

/// <summary>What code a <see cref="StackFrame"/> runs.</summary>
public enum StackFrameKind
{
    /// <summary>Native code, unwound and named by PSLinuxTrace from the module's ELF symbols, CFI and DWARF.</summary>
    Native,
    /// <summary>A managed .NET method, named by the .NET runtime's DAC through ClrMD: Symbol is Type.Method(signature), ModulePath the assembly.</summary>
    Managed,
    /// <summary>A marker the .NET runtime keeps on the stack where managed and native code meet (InlinedCallFrame, ...).</summary>
    Runtime,
}

/// <summary>One memory region of the process (a PT_LOAD segment), with its file when NT_FILE names one.</summary>
public sealed record CoreMapping(
    ulong Start,
    ulong End,
    ulong FileOffset,
    string Permissions,
    string? Path,
    bool InCore,
    ulong BytesInCore)
{
    public ulong Size => End - Start;
}

/// <summary>One auxiliary vector entry (AT_PHDR, AT_ENTRY, ...).</summary>
public sealed record AuxvEntry(ulong Type, string Name, ulong Value);

/// <summary>A mapped file and its GNU build-id: from the core's own memory, and from the file found on this machine.</summary>
public sealed record ModuleBuildId(string Path, string? BuildId, string? FoundPath, string? FoundBuildId, bool Matches, ulong LoadBias);

/// <summary>x86_64 registers of a thread (user_regs_struct, plus the FP/SSE state when the core has it).</summary>
public sealed record X64Registers
{
    public ulong Rip { get; init; }
    public ulong Rsp { get; init; }
    public ulong Rbp { get; init; }
    public ulong Rax { get; init; }
    public ulong Rbx { get; init; }
    public ulong Rcx { get; init; }
    public ulong Rdx { get; init; }
    public ulong Rsi { get; init; }
    public ulong Rdi { get; init; }
    public ulong R8 { get; init; }
    public ulong R9 { get; init; }
    public ulong R10 { get; init; }
    public ulong R11 { get; init; }
    public ulong R12 { get; init; }
    public ulong R13 { get; init; }
    public ulong R14 { get; init; }
    public ulong R15 { get; init; }
    public ulong OrigRax { get; init; }
    public ulong Eflags { get; init; }
    public ulong Cs { get; init; }
    public ulong Ss { get; init; }
    public ulong Ds { get; init; }
    public ulong Es { get; init; }
    public ulong Fs { get; init; }
    public ulong Gs { get; init; }
    public ulong FsBase { get; init; }
    public ulong GsBase { get; init; }
    /// <summary>MXCSR from the FP state (NT_FPREGSET), or null when the core has none.</summary>
    public uint? Mxcsr { get; init; }
    /// <summary>x87 control and status words.</summary>
    public ushort? FpuControlWord { get; init; }
    public ushort? FpuStatusWord { get; init; }
    /// <summary>xmm0-xmm15 as 32 hex digits each (little-endian lanes, as gdb's v2_int64 reversed), or null.</summary>
    public string[]? Xmm { get; init; }
    /// <summary>ymm0-ymm15 upper halves from NT_X86_XSTATE, as 32 hex digits each, or null.</summary>
    public string[]? YmmHigh { get; init; }

    /// <summary>
    /// What a thread's list view (and a remote copy) shows for its Registers: the registers that place
    /// the thread, in hex like every address; Format-List on the object shows them all.
    /// </summary>
    public override string ToString() => $"rip=0x{Rip:x} rsp=0x{Rsp:x} rbp=0x{Rbp:x} rax=0x{Rax:x} orig_rax={(long)OrigRax}";
}
