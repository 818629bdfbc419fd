using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Snapshot;
using PSLinuxTrace.Engine.Symbols;
using PSLinuxTrace.Engine.Tests.Cores;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Symbols;

/// <summary>
/// One address space for every reader: the same process symbolized live (through /proc/PID/mem and
/// /proc/PID/maps), from a gcore core of it and from a Save-ProcessSnapshot core of it gives the same
/// module map and the same frames, and those frames are gdb's.
/// </summary>
public sealed class OneAddressSpaceTests : IDisposable
{
    private readonly List<string> _files = new();

    public void Dispose()
    {
        foreach (string f in _files) File.Delete(f);
    }

    [PrivilegedFact("ptrace, gcore and a snapshot of a running process")]
    public void ALiveProcessItsGcoreCoreAndItsSnapshotHaveTheSameModulesAndFrames()
    {
        string exe = CoreFixtures.Executable;
        using var p = FixtureProcess.Start(exe, "wait", "2");
        int pid = p.TargetPid;
        var workers = ProcFs.ListThreads(pid).Where(t => t != pid).ToArray();
        Assert.Equal(2, workers.Length);
        foreach (int tid in workers) WaitUntilBlocked(pid, tid);
        using var symbolizer = new Symbolizer(NullLogger.Instance);

        // Live: the modules from /proc/PID/maps and memory; the workers' registers from gdb, a tracer in a
        // process of its own (ptrace belongs in the tracer process, not in this one).
        using var memory = MemoryFile.Open(pid);
        var liveMap = symbolizer.MapModules(memory, ModuleLayout.FromProcess(pid));
        var registers = GdbRegisters(pid);
        var live = workers.ToDictionary(t => t, t => symbolizer.Backtrace(liveMap, registers[t]));

        string gcore = Path.Combine(Fixtures.ScratchDirectory, $"one-{Guid.NewGuid():N}");
        _files.Add($"{gcore}.{pid}");
        var r = Tool.Run("gcore", new[] { "-o", gcore, pid.ToString() }, TimeSpan.FromMinutes(2));
        Assert.True(r.ExitCode == 0, r.StdErr);
        var (gcoreMap, fromGcore) = FromCore(symbolizer, $"{gcore}.{pid}", workers);

        string snapshot = Path.Combine(Fixtures.ScratchDirectory, $"one-{Guid.NewGuid():N}.core");
        _files.Add(snapshot);
        new LiveSnapshotter(NullLogger.Instance).Save(pid, snapshot, SnapshotMemory.Default);
        var (snapshotMap, fromSnapshot) = FromCore(symbolizer, snapshot, workers);

        var expectedModules = Describe(liveMap);
        Assert.Contains(expectedModules, m => m.Path == exe && m.BuildId is not null && m.Matches);
        Assert.Contains(expectedModules, m => m.Path == ModuleLayout.VdsoPath && m.BuildId is not null);
        Assert.Equal(expectedModules, Describe(gcoreMap));
        Assert.Equal(expectedModules, Describe(snapshotMap));
        // One file opened per distinct file, for all three maps: the caches are shared.
        Assert.Equal(liveMap.Modules.Count(m => m.LocalPath is not null) + liveMap.Modules.Count(m => m.DebugPath is not null), symbolizer.FilesOpened);

        var gdb = CoreFixtures.GdbBacktraces(exe, $"{gcore}.{pid}");
        foreach (int tid in workers)
        {
            Assert.Equal(new[] { "pslt_worker_wait", "worker" }, live[tid].Where(f => f.ModulePath == exe).Select(f => f.Symbol));
            Assert.Equal(live[tid], fromGcore[tid]);
            Assert.Equal(live[tid], fromSnapshot[tid]);
            AssertLikeGdb(gdb[tid], live[tid]);
        }
    }

    private static List<(string Path, ulong Start, ulong End, string? BuildId, ulong LoadBias, string? LocalPath, string? DebugPath, bool Matches)> Describe(ModuleMap map) =>
        map.Modules.Select(m => (m.Path, m.Start, m.End, m.BuildId, m.LoadBias, m.LocalPath, m.DebugPath, m.Matches)).ToList();

    private static (ModuleMap, Dictionary<int, StackFrame[]>) FromCore(Symbolizer symbolizer, string path, int[] tids)
    {
        using var core = CoreFile.Open(path);
        var map = symbolizer.MapModules(core.Memory, CoreModules.Layout(core));
        CoreModules.SpliceLocalFiles(core, map);
        var frames = tids.ToDictionary(t => t, t => symbolizer.Backtrace(map, core.Threads.Single(x => x.Status.Pid == t).Status.Registers));
        return (map, frames);
    }

    /// <summary>Every thread's registers as `gdb -p` reads them (the DWARF ones the unwinder uses, and rip).</summary>
    private static Dictionary<int, UserRegsX64> GdbRegisters(int pid)
    {
        string[] names = ["rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"];
        string format = string.Join(' ', names.Select(n => n + "=%lx"));
        string values = string.Join(", ", names.Select(n => "(unsigned long)$" + n));
        var r = Tool.Run("gdb", ["-nx", "-batch", "-iex", "set debuginfod enabled off", "-p", pid.ToString(),
            "-ex", $"thread apply all printf \"{format}\\n\", {values}"]);
        var result = new Dictionary<int, UserRegsX64>();
        foreach (string chunk in Regex.Split(r.StdOut, @"(?=^Thread \d+ \()", RegexOptions.Multiline).Where(c => c.StartsWith("Thread ", StringComparison.Ordinal)))
        {
            int tid = int.Parse(Regex.Match(chunk, @"LWP (\d+)").Groups[1].Value);
            ulong V(string n) => Convert.ToUInt64(Regex.Match(chunk, $@"\b{n}=([0-9a-f]+)").Groups[1].Value, 16);
            result[tid] = new UserRegsX64
            {
                rax = V("rax"), rdx = V("rdx"), rcx = V("rcx"), rbx = V("rbx"), rsi = V("rsi"), rdi = V("rdi"), rbp = V("rbp"), rsp = V("rsp"),
                r8 = V("r8"), r9 = V("r9"), r10 = V("r10"), r11 = V("r11"), r12 = V("r12"), r13 = V("r13"), r14 = V("r14"), r15 = V("r15"), rip = V("rip"),
            };
        }
        Assert.True(result.Count > 0, $"gdb printed no registers:\n{r.StdOut}\n{r.StdErr}");
        return result;
    }

    private static void WaitUntilBlocked(int pid, int tid)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        string State() => File.ReadAllText($"/proc/{pid}/task/{tid}/stat").Split(") ")[1][..1];
        while (State() != "S" && DateTime.UtcNow < deadline) Thread.Sleep(10);
        Assert.Equal("S", State());
    }

    /// <summary>Frame 0 names gdb's function; every later pc gdb prints is among ours, in order, naming the same function.</summary>
    private static void AssertLikeGdb(List<(ulong? Pc, string Name)> gdb, StackFrame[] ours)
    {
        string Describe() => string.Join('\n', ours.Select(f => f.ToString()));
        Assert.True(SameFunction(ours[0], gdb[0].Name), $"frame 0: gdb {gdb[0].Name}\n{Describe()}");
        int k = 1;
        foreach (var (pc, name) in gdb.Skip(1))
        {
            if (pc is null) continue;
            int at = Array.FindIndex(ours, k, f => f.InstructionPointer == pc);
            Assert.True(at >= 0, $"gdb has a frame at 0x{pc:x} ({name}) that we lack:\n{Describe()}");
            Assert.True(SameFunction(ours[at], name), $"0x{pc:x}: gdb {name}, we {ours[at]}");
            k = at;
        }
    }

    /// <summary>Equal names, or aliases: both names start at the same address in the module's symbol table (gdb names libc frames from DWARF).</summary>
    private static bool SameFunction(StackFrame frame, string gdbName)
    {
        if (frame.Symbol == gdbName) return true;
        if (frame.Symbol is null || frame.ModulePath is null) return false;
        using var elf = ElfFile.Open(frame.ModulePath);
        string? id = elf.BuildIdHex;
        string debug = id is null ? "" : $"/usr/lib/debug/.build-id/{id[..2]}/{id[2..]}.debug";
        using var symbols = File.Exists(debug) ? ElfFile.Open(debug) : ElfFile.Open(frame.ModulePath);
        var table = symbols.SymbolTable ?? symbols.DynamicSymbols!;
        ulong? Start(string name) => table.FindAll(name).FirstOrDefault()?.Value;
        return Start(frame.Symbol) is { } a && a == Start(gdbName);
    }
}
