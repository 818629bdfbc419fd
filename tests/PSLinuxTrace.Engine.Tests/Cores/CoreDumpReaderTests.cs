using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Cores;

/// <summary>Read-CoreDump's engine on real kernel and gcore cores, cross-checked against gdb on the same core.</summary>
public class CoreDumpReaderTests
{
    private static CoreDump Read(string core, CoreDumpOptions? options = null) => new CoreDumpReader(NullLogger.Instance).Read(core, options);

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void KernelSegvCoreHasTheSignalFaultAddressAndCrashSite()
    {
        var (exe, corePath) = CoreFixtures.Kernel("segv", 0);
        var printed = CoreFixtures.Printed(corePath);
        var core = Read(corePath);
        Assert.Equal(int.Parse(printed["pid"]), core.Pid);
        Assert.Equal("SIGSEGV", core.Signal);
        Assert.Equal(11, core.SignalNumber);
        Assert.Equal("SEGV_MAPERR", core.SignalCodeName);
        Assert.Equal(0x10UL, core.FaultAddress);
        string name = Path.GetFileName(exe);
        Assert.Equal(name[..Math.Min(15, name.Length)], core.ProcessName);      // the kernel's 15-character comm
        string args = $"{exe} segv 0";
        Assert.Equal(args[..Math.Min(79, args.Length)], core.CommandLine);      // pr_psargs holds 80 bytes
        Assert.Equal(exe, core.Executable);
        Assert.Equal("Kernel", core.Producer);
        Assert.False(core.IsTruncated);
        var t = Assert.Single(core.Threads);
        Assert.True(t.IsCrashingThread);
        Assert.Equal(core.Pid, t.Tid);
        // The faulting instruction is inside pslt_crash_here, whose address the fixture printed.
        ulong crashHere = Convert.ToUInt64(printed["pslt_crash_here"][2..], 16);
        Assert.InRange(t.Registers.Rip, crashHere, crashHere + 200);
        Assert.Equal("pslt_crash_here", t.Frames[0].Symbol);
        Assert.Equal(t.Registers.Rip - crashHere, t.Frames[0].Offset);
        Assert.Equal(new[] { "pslt_crash_here", "main" }, t.Frames.Take(2).Select(f => f.Symbol));
        Assert.Contains(core.Auxv, a => a.Name == "AT_ENTRY");
        Assert.Contains(core.Mappings, m => m.Path == exe && m.Permissions == "r-x");
        AssertFramesMatchGdb(exe, corePath, core);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void KernelAbortCoreWith16ThreadsMatchesGdb()
    {
        var (exe, corePath) = CoreFixtures.Kernel("abort", 15);
        var core = Read(corePath);
        Assert.Equal("SIGABRT", core.Signal);
        Assert.Equal(16, core.Threads.Length);
        Assert.Null(core.FaultAddress);
        Assert.Equal(core.Pid, core.SenderPid); // abort() signals itself with tgkill
        Assert.Equal("SI_TKILL", core.SignalCodeName);
        var crashed = Assert.Single(core.Threads, t => t.IsCrashingThread);
        Assert.Contains(crashed.Frames, f => f.Symbol == "pslt_crash_here");
        Assert.Contains(crashed.Frames, f => f.Symbol is "abort" or "__GI_abort");
        foreach (var worker in core.Threads.Where(t => !t.IsCrashingThread))
            Assert.Equal(new[] { "pslt_worker_wait", "worker" }, worker.Frames.Where(f => f.ModulePath == exe).Select(f => f.Symbol));
        AssertFramesMatchGdb(exe, corePath, core);
    }

    [PrivilegedFact("gcore attaches with ptrace")]
    public void GcoreCoreMatchesGdbAndHasNoSignal()
    {
        var (exe, corePath, pid) = CoreFixtures.Gcore(3);
        var core = Read(corePath);
        Assert.Equal(pid, core.Pid);
        Assert.Equal(4, core.Threads.Length);
        Assert.Equal("Gdb", core.Producer);
        Assert.Contains(core.Threads, t => t.Frames.Any(f => f.Symbol == "pslt_wait_here"));
        Assert.Equal(3, core.Threads.Count(t => t.Frames.Any(f => f.Symbol == "pslt_worker_wait")));
        AssertFramesMatchGdb(exe, corePath, core);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void RegistersMatchGdb()
    {
        var (exe, corePath) = CoreFixtures.Kernel("abort", 15);
        var core = Read(corePath);
        var r = Tool.Run("gdb", new[] { "-nx", "-batch", "-iex", "set debuginfod enabled off", "-ex", "thread apply all info registers rip rsp rbp rbx fs_base",
            exe, corePath });
        // gdb prints "Thread N (... (LWP tid)):" then one line per register, warnings in between.
        var chunks = Regex.Split(r.StdOut, @"(?=^Thread \d+ \()", RegexOptions.Multiline).Where(c => c.StartsWith("Thread ", StringComparison.Ordinal)).ToList();
        Assert.Equal(core.Threads.Length, chunks.Count);
        foreach (string chunk in chunks)
        {
            var t = core.Threads.Single(x => x.Tid == int.Parse(Regex.Match(chunk, @"LWP (\d+)").Groups[1].Value));
            ulong Reg(string reg) => Convert.ToUInt64(Regex.Match(chunk, @"^" + reg + @"\s+0x([0-9a-f]+)", RegexOptions.Multiline).Groups[1].Value, 16);
            Assert.Equal(Reg("rip"), t.Registers.Rip);
            Assert.Equal(Reg("rsp"), t.Registers.Rsp);
            Assert.Equal(Reg("rbp"), t.Registers.Rbp);
            Assert.Equal(Reg("rbx"), t.Registers.Rbx);
            Assert.Equal(Reg("fs_base"), t.Registers.FsBase);
            Assert.NotNull(t.Registers.Xmm);
        }
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void MemoryReadsSpliceTheCoreWithMappedFiles()
    {
        var (exe, corePath) = CoreFixtures.Kernel("segv", 0);
        var core = Read(corePath);
        var exeMap = core.Mappings.First(m => m.Path == exe && m.FileOffset == 0);
        Assert.Equal("\u007fELF"u8.ToArray(), core.ReadMemory(exeMap.Start, 4));
        // The text of pslt_crash_here is not in a kernel core (coredump_filter leaves file-backed text
        // out); it comes from the executable on disk.
        var text = core.Mappings.First(m => m.Path == exe && m.Permissions == "r-x");
        Assert.False(text.InCore);
        var frame = core.Threads[0].Frames[0];
        using var elf = ElfFile.Open(exe);
        var sym = elf.SymbolTable!.Lookup("pslt_crash_here")!;
        ulong bias = core.BuildIds.Single(b => b.Path == exe).LoadBias;
        var fromCore = core.ReadMemory(bias + sym.Value, (int)sym.Size);
        var seg = elf.FindLoadSegmentByAddress(sym.Value)!;
        Assert.Equal(elf.GetBytes(sym.Value - seg.VirtualAddress + seg.Offset, sym.Size).ToArray(), fromCore);
        Assert.Equal(frame.InstructionPointer, core.Threads[0].Registers.Rip);
        // Strings and pointers: argv[0] through the stack's auxv AT_EXECFN.
        ulong execfn = core.Auxv.Single(a => a.Name == "AT_EXECFN").Value;
        Assert.Equal(exe, core.ReadString(execfn));
        Assert.Throws<BadInputFormatException>(() => core.ReadMemory(0x10, 4));
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void MappingsAndBuildIdsMatchTheNotes()
    {
        var (exe, corePath) = CoreFixtures.Kernel("segv", 0);
        var core = Read(corePath);
        // eu-readelf lists NT_FILE as "N files:" then "start-end offset size path" lines.
        string notes = Tool.Check("eu-readelf", "-n", corePath);
        var lines = Regex.Matches(notes, @"^\s+([0-9a-f]+)-([0-9a-f]+) ([0-9a-f]+) \d+\s+(\S.*)$", RegexOptions.Multiline);
        Assert.Equal(int.Parse(Regex.Match(notes, @"(\d+) files:").Groups[1].Value), lines.Count);
        foreach (Match l in lines)
        {
            var m = Assert.Single(core.Mappings, x => x.Start == Convert.ToUInt64(l.Groups[1].Value, 16));
            Assert.Equal(Convert.ToUInt64(l.Groups[2].Value, 16), m.End);
            Assert.Equal(Convert.ToUInt64(l.Groups[3].Value, 16), m.FileOffset);
            Assert.Equal(l.Groups[4].Value.Trim(), m.Path);
        }
        var exeId = core.BuildIds.Single(b => b.Path == exe);
        using var elf = ElfFile.Open(exe);
        Assert.Equal(elf.BuildIdHex, exeId.BuildId);
        Assert.True(exeId.Matches);
        Assert.All(core.BuildIds.Where(b => b.FoundPath is not null), b => Assert.True(b.BuildId is null || b.Matches));
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void AMismatchedExecutableGivesAWarningNotWrongNames()
    {
        var (exe, corePath) = CoreFixtures.Kernel("segv", 0);
        // Another program in the executable's place: its build-id differs, so its symbols must not be used.
        var core = Read(corePath, new CoreDumpOptions { ExecutablePath = Fixtures.Build("symbols") });
        Assert.Contains(core.Warnings, w => w.Contains("does not match", StringComparison.Ordinal));
        Assert.DoesNotContain(core.Threads[0].Frames, f => f.ModulePath == exe && f.Symbol is not null && f.Symbol.StartsWith("pslt_data", StringComparison.Ordinal));
        Assert.Null(core.Threads[0].Frames[0].Symbol);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void ExecutablePathNamesTheProgramWhenItMoved()
    {
        var (exe, corePath) = CoreFixtures.Kernel("segv", 0);
        // The same program, elsewhere under another name: its build-id matches, so it is used.
        string moved = Path.Combine(Fixtures.ScratchDirectory, "moved-" + Guid.NewGuid().ToString("N"));
        File.Copy(exe, moved);
        var core = Read(corePath, new CoreDumpOptions { ExecutablePath = moved });
        Assert.Empty(core.Warnings);
        var id = core.BuildIds.Single(b => b.Path == exe);
        Assert.Equal(moved, id.FoundPath);
        Assert.True(id.Matches);
        Assert.Equal(new[] { "pslt_crash_here", "main" }, core.Threads[0].Frames.Take(2).Select(f => f.Symbol));
        // Memory the core left out (the text) now comes from the moved copy.
        var text = core.Mappings.First(m => m.Path == exe && m.Permissions == "r-x");
        Assert.Equal(text.Size, (ulong)core.ReadMemory(text.Start, (int)text.Size).Length);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void SysRootIsSearchedFirst()
    {
        var (exe, corePath) = CoreFixtures.Kernel("segv", 0);
        string root = Path.Combine(Fixtures.ScratchDirectory, "sysroot-" + Guid.NewGuid().ToString("N"));
        string copy = root + exe;
        Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
        File.Copy(exe, copy);
        var core = Read(corePath, new CoreDumpOptions { SysRoot = root });
        Assert.Equal(copy, core.BuildIds.Single(b => b.Path == exe).FoundPath);
        Assert.Equal("pslt_crash_here", core.Threads[0].Frames[0].Symbol);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void NoBacktraceSkipsUnwinding()
    {
        var (_, corePath) = CoreFixtures.Kernel("abort", 15);
        var core = Read(corePath, new CoreDumpOptions { Backtraces = false });
        Assert.Equal(16, core.Threads.Length);
        Assert.All(core.Threads, t => Assert.Empty(t.Frames));
    }

    /// <summary>
    /// Every thread's frames against gdb's: the same pcs (gdb's inlined frames aside, which share
    /// their caller's pc), and the same function for each pc: equal names, or aliases of one address
    /// (gdb names libc frames from DWARF: __GI_raise for raise).
    /// </summary>
    internal static void AssertFramesMatchGdb(string exe, string corePath, CoreDump core)
    {
        var gdb = CoreFixtures.GdbBacktraces(exe, corePath);
        Assert.Equal(core.Threads.Length, gdb.Count);
        foreach (var t in core.Threads)
        {
            var expected = gdb[t.Tid];
            Assert.True(t.Frames.Length > 0, $"thread {t.Tid} has no frames");
            // Frame 0: same function.
            Assert.True(SameFunction(t.Frames[0], expected[0].Name), $"thread {t.Tid} frame 0: gdb {expected[0].Name}, we {t.Frames[0]}");
            // Every later gdb frame's pc appears in ours, in order, with the same function (or an inline parent).
            int k = 1;
            foreach (var (pc, name) in expected.Skip(1))
            {
                if (pc is null) continue;
                int at = Array.FindIndex(t.Frames, k, f => f.InstructionPointer == pc);
                if (at < 0)
                {
                    // gdb also shows tail-call frames it synthesizes from DWARF call-site entries: their
                    // return address is nowhere on the stack, so no unwinder can find them.
                    ulong lo = t.Registers.Rsp, hi = t.Frames[^1].StackPointer + 64;
                    var stack = core.ReadMemory(lo, (int)(hi - lo));
                    bool onStack = false;
                    for (int i = 0; i + 8 <= stack.Length; i += 8) onStack |= BitConverter.ToUInt64(stack, i) == pc;
                    Assert.False(onStack, $"thread {t.Tid}: gdb has a frame at 0x{pc:x} ({name}) that we lack:\n{string.Join('\n', t.Frames.Select(f => f.ToString()))}");
                    continue;
                }
                k = at;
                Assert.True(SameFunction(t.Frames[k], name), $"thread {t.Tid} frame at 0x{pc:x}: gdb {name}, we {t.Frames[k]}");
            }
        }
    }

    private static bool SameFunction(StackFrame frame, string gdbName)
    {
        if (frame.Symbol == gdbName) return true;
        if (frame.Symbol is null || frame.ModulePath is null || gdbName == "??") return false;
        // An alias: gdb's name and ours start at the same address in the module's symbol table.
        string module = frame.ModulePath;
        using var elf = ElfFile.Open(module);
        var id = elf.BuildIdHex;
        string debug = id is null ? "" : $"/usr/lib/debug/.build-id/{id[..2]}/{id[2..]}.debug";
        using var symbols = File.Exists(debug) ? ElfFile.Open(debug) : ElfFile.Open(module);
        var table = symbols.SymbolTable ?? symbols.DynamicSymbols!;
        var ours = table.FindAll(frame.Symbol).FirstOrDefault();
        var theirs = table.FindAll(gdbName).FirstOrDefault();
        return ours is not null && theirs is not null && ours.Value == theirs.Value;
    }
}
