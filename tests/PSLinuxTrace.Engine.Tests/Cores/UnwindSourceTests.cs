using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using PSLinuxTrace.Engine.Unwind;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Cores;

/// <summary>
/// Where the unwinder gets a caller from: .debug_frame when the program's FDEs are only there,
/// the rbp chain when there is no CFI at all, and a clean stop at a smashed frame; plus the
/// other crash/thread-count combinations against gdb.
/// </summary>
public class UnwindSourceTests
{
    // gcc puts the CFI of code built without unwind tables but with -g in .debug_frame, and none at all with -g0.
    private const string DebugFrameOnly = "-fno-asynchronous-unwind-tables -fno-unwind-tables";
    private const string NoCfi = "-fno-asynchronous-unwind-tables -fno-unwind-tables -g0";

    private static CoreDump Read(string core) => new CoreDumpReader(NullLogger.Instance).Read(core);

    private static string Describe(CoreThread t) => string.Join('\n', t.Frames.Select(f => $"{f} [{f.Method}]"));

    [PrivilegedTheory("a kernel core needs RLIMIT_CORE and core_pattern")]
    [InlineData("segv", 15)]
    [InlineData("abort", 0)]
    public void OtherCrashAndThreadCountsMatchGdb(string mode, int threads)
    {
        var (exe, corePath) = CoreFixtures.Kernel(mode, threads);
        var core = Read(corePath);
        Assert.Equal(threads + 1, core.Threads.Length);
        Assert.Equal(mode == "segv" ? "SIGSEGV" : "SIGABRT", core.Signal);
        var crashed = Assert.Single(core.Threads, t => t.IsCrashingThread);
        Assert.Equal(core.Pid, crashed.Tid);
        Assert.Contains(crashed.Frames, f => f.Symbol == "pslt_crash_here" && f.ModulePath == exe);
        Assert.Equal(threads, core.Threads.Count(t => t.Frames.Any(f => f.Symbol == "pslt_worker_wait")));
        CoreDumpReaderTests.AssertFramesMatchGdb(exe, corePath, core);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void ProgramWithCfiOnlyInDebugFrameUnwindsWithCfi()
    {
        var (exe, corePath) = CoreFixtures.Kernel("segv", 3, DebugFrameOnly);
        using (var elf = ElfFile.Open(exe))
        {
            // The fixture really is that case: its functions are in .debug_frame and not in .eh_frame.
            Assert.NotNull(elf.FindSection(".debug_frame"));
            var cfi = PSLinuxTrace.Engine.Unwind.CallFrameInfo.Load(elf)!;
            Assert.Contains(".debug_frame", cfi.Source);
            Assert.True(cfi.Covers(elf.SymbolTable!.Lookup("pslt_crash_here")!.Value));
        }
        var core = Read(corePath);
        var crashed = core.CrashingThread!;
        Assert.Equal(new[] { "pslt_crash_here", "main" }, crashed.Frames.Take(2).Select(f => f.Symbol));
        // Callers of the fixture's functions were found with CFI, not by following rbp.
        foreach (var t in core.Threads)
            for (int k = 1; k < t.Frames.Length; k++)
                if (t.Frames[k - 1].ModulePath == exe)
                    Assert.True(t.Frames[k].Method == "CallFrameInfo", $"thread {t.Tid} frame {k}:\n{Describe(t)}");
        CoreDumpReaderTests.AssertFramesMatchGdb(exe, corePath, core);
    }

    /// <summary>
    /// The program's CFI only in .debug_frame, moved into its separate debug file and compressed there
    /// (objcopy --compress-debug-sections): the stripped program has none of its own.
    /// </summary>
    /// <summary>
    /// The program's CFI only in .debug_frame, moved into its separate debug file and compressed there
    /// (objcopy --compress-debug-sections): the stripped program has none of its own.
    /// </summary>
    private static string StrippedWithCompressedDebugFrame(string compression)
    {
        string dir = Path.Combine(Fixtures.ScratchDirectory, "debug-frame-" + compression);
        Directory.CreateDirectory(dir);
        string exe = Path.Combine(dir, "crash"), debug = exe + ".debug";
        File.Copy(Fixtures.Build("crash", "-pthread " + DebugFrameOnly), exe, overwrite: true);
        Tool.Check("objcopy", "--only-keep-debug", $"--compress-debug-sections={compression}", exe, debug);
        Tool.Check("objcopy", "--only-keep-debug", exe, exe + ".plain-debug");
        Tool.Check("objcopy", "--strip-debug", $"--add-gnu-debuglink={debug}", exe);
        return exe;
    }

    [PrivilegedTheory("a kernel core needs RLIMIT_CORE and core_pattern")]
    [InlineData("zlib")]
    [InlineData("zstd")]
    public void CfiInACompressedDebugFrameOfTheDebugFileUnwinds(string compression)
    {
        var (exe, corePath) = CoreFixtures.Kernel("kernel-debug-frame-" + compression, () => StrippedWithCompressedDebugFrame(compression), "segv", 2);
        using (var stripped = ElfFile.Open(exe))
        using (var debug = ElfFile.Open(exe + ".debug"))
        using (var plain = ElfFile.Open(exe + ".plain-debug"))
        {
            Assert.Null(stripped.FindSection(".debug_frame"));
            Assert.True(ElfSectionDecompressor.IsCompressed(debug.FindSection(".debug_frame")!), "objcopy left .debug_frame uncompressed");
            Assert.False(ElfSectionDecompressor.IsCompressed(plain.FindSection(".debug_frame")!));
            // Inflated, it holds the FDEs of the uncompressed copy, and the same rows.
            var cfi = CallFrameInfo.Load(debug)!;
            var reference = CallFrameInfo.Load(plain)!;
            Assert.Equal(".debug_frame", cfi.Source);
            Assert.Equal(reference.Count, cfi.Count);
            ulong crashHere = plain.SymbolTable!.Lookup("pslt_crash_here")!.Value;
            for (ulong pc = crashHere; pc < crashHere + 16; pc++)
            {
                var (ours, theirs) = (cfi.FindRow(pc)!, reference.FindRow(pc)!);
                Assert.Equal((theirs.CfaRegister, theirs.CfaOffset), (ours.CfaRegister, ours.CfaOffset));
                Assert.Equal(theirs.Rules.Select(r => (r.Kind, r.Offset)), ours.Rules.Select(r => (r.Kind, r.Offset)));
            }
        }
        var core = Read(corePath);
        var crashed = core.CrashingThread!;
        Assert.Equal(new[] { "pslt_crash_here", "main" }, crashed.Frames.Take(2).Select(f => f.Symbol));
        foreach (var t in core.Threads)
            for (int k = 1; k < t.Frames.Length; k++)
                if (t.Frames[k - 1].ModulePath == exe)
                    Assert.True(t.Frames[k].Method == "CallFrameInfo", $"thread {t.Tid} frame {k}:\n{Describe(t)}");
        CoreDumpReaderTests.AssertFramesMatchGdb(exe, corePath, core);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void ProgramWithoutCfiFallsBackToFramePointers()
    {
        var (exe, corePath) = CoreFixtures.Kernel("segv", 3, NoCfi);
        var core = Read(corePath);
        var crashed = core.CrashingThread!;
        Assert.Equal(new[] { "pslt_crash_here", "main" }, crashed.Frames.Take(2).Select(f => f.Symbol));
        Assert.True(crashed.Frames[1].Method == "FramePointer", Describe(crashed));
        foreach (var t in core.Threads.Where(t => !t.IsCrashingThread))
            Assert.Equal(new[] { "pslt_worker_wait", "worker" }, t.Frames.Where(f => f.ModulePath == exe).Select(f => f.Symbol));
        CoreDumpReaderTests.AssertFramesMatchGdb(exe, corePath, core);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void AFaultInASignalHandlerUnwindsThroughTheSignalFrame()
    {
        var (exe, corePath) = CoreFixtures.Kernel("signal", 1);
        var core = Read(corePath);
        Assert.Equal("SIGSEGV", core.Signal);
        Assert.Equal(0x20UL, core.FaultAddress);
        var crashed = core.CrashingThread!;
        Assert.Equal("pslt_handler", crashed.Frames[0].Symbol);
        // Past the kernel's signal frame (__restore_rt's CFI expression) to the interrupted raise() and its callers (then _start, where gdb stops at main).
        Assert.Equal(new[] { "pslt_handler", "pslt_crash_here", "main" },
            crashed.Frames.Where(f => f.ModulePath == exe).Select(f => f.Symbol).Take(3));
        Assert.Contains(crashed.Frames, f => f.Symbol is "raise" or "__GI_raise" or "gsignal");
        CoreDumpReaderTests.AssertFramesMatchGdb(exe, corePath, core);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void ASmashedFrameEndsTheBacktraceCleanly()
    {
        var (exe, corePath) = CoreFixtures.Kernel("smash", 2);
        var core = Read(corePath);
        Assert.Equal("SIGSEGV", core.Signal);
        Assert.Equal(0x18UL, core.FaultAddress);
        var crashed = core.CrashingThread!;
        Assert.Equal("pslt_smash_here", crashed.Frames[0].Symbol);
        // The saved return address is 0x4242424242424242 and the saved rbp 0x4141414141414141: the
        // caller is reported as what the stack says (unnamed), and the walk stops there.
        Assert.True(crashed.Frames.Length <= 2, Describe(crashed));
        Assert.All(crashed.Frames.Skip(1), f => Assert.Null(f.Symbol));
        if (crashed.Frames.Length == 2) Assert.Equal(0x4242424242424242UL, crashed.Frames[1].InstructionPointer);
        // gdb sees the same garbage return address.
        var gdb = CoreFixtures.GdbBacktraces(exe, corePath)[crashed.Tid];
        Assert.Equal("pslt_smash_here", gdb[0].Name);
        Assert.Contains(gdb, f => f.Pc == 0x4242424242424242UL);
        // The other threads are unharmed.
        Assert.All(core.Threads.Where(t => !t.IsCrashingThread),
            t => Assert.Equal(new[] { "pslt_worker_wait", "worker" }, t.Frames.Where(f => f.ModulePath == exe).Select(f => f.Symbol)));
    }
}
