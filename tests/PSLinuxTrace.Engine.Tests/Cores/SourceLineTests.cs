using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace PSLinuxTrace.Engine.Tests.Cores;

/// <summary>
/// Source lines and inlined frames in the stacks of a gcc -O2 program (tests/Fixtures/inline_crash.c:
/// inlined calls two deep, one from a header, a tail call, worker threads parked in inlined code), from
/// kernel and gcore cores: every thread frame for frame as gdb's bt and eu-stack -i -s print it.
/// </summary>
public sealed class SourceLineTests(ITestOutputHelper output)
{
    public static string Program => Fixtures.Build("inline_crash", "-O2 -pthread");

    private static (string Exe, string Core) Kernel(string mode, string copy = "") =>
        CoreFixtures.Kernel($"inline-{mode}{copy}", () => Program, mode, 3);

    public static TheoryData<string> Cores() => new() { "segv", "abort", "ambiguous", "gcore" };

    private static (string Exe, string Core) Core(string kind)
    {
        if (kind != "gcore") return Kernel(kind);
        var (exe, core, _) = CoreFixtures.Gcore("inline-gcore", () => Program, 3);
        return (exe, core);
    }

    private static CoreDump Read(string core) => new CoreDumpReader(NullLogger.Instance).Read(core);

    [PrivilegedTheory("kernel cores need RLIMIT_CORE and core_pattern; gcore attaches with ptrace")]
    [MemberData(nameof(Cores))]
    public void EveryThreadHasGdbsFramesFunctionsAndLines(string kind)
    {
        var (exe, corePath) = Core(kind);
        var core = Read(corePath);
        var gdb = ReferenceBacktraces.Gdb(exe, corePath);
        Assert.Equal(gdb.Keys.Order(), core.Threads.Select(t => t.Tid).Order());
        var failures = new List<string>();
        foreach (var t in core.Threads)
        {
            output.WriteLine(BacktraceComparison.Table($"{kind}, thread {t.Tid}{(t.IsCrashingThread ? " (crashed)" : "")}", gdb[t.Tid], t.Frames));
            failures.AddRange(BacktraceComparison.Differences(gdb[t.Tid], t.Frames).Select(d => $"thread {t.Tid} {d}"));
        }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
        // The fixture really exercises what it is for: inlined frames in the program and in libc's, lines everywhere.
        if (kind != "gcore")
            Assert.Contains(core.CrashingThread!.Frames, f => f.IsInlined && f.File!.EndsWith("inline_crash.h", StringComparison.Ordinal));
        Assert.Equal(3, core.Threads.Count(t => t.Frames.Any(f => f.Symbol == "ic_worker_loop" && f.IsInlined)));
    }

    [PrivilegedTheory("kernel cores need RLIMIT_CORE and core_pattern; gcore attaches with ptrace")]
    [MemberData(nameof(Cores))]
    public void EveryThreadHasEuStacksFramesLinesAndColumns(string kind)
    {
        var (exe, corePath) = Core(kind);
        var core = Read(corePath);
        var eu = ReferenceBacktraces.EuStack(exe, corePath);
        var failures = new List<string>();
        foreach (var t in core.Threads)
        {
            // eu-stack shows what is on the stack: not gdb's tail-call frames.
            var onStack = t.Frames.Where(f => f.Method != "TailCall").ToArray();
            output.WriteLine(BacktraceComparison.Table($"{kind}, thread {t.Tid}", eu[t.Tid], onStack, "eu-stack -i -s"));
            failures.AddRange(BacktraceComparison.Differences(eu[t.Tid], onStack, columns: true).Select(d => $"thread {t.Tid} {d}"));
        }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void NoBacktraceOpensNoDwarf()
    {
        var (_, corePath) = Kernel("abort");
        using var reader = new CoreDumpReader(NullLogger.Instance);
        var core = reader.Read(corePath, new CoreDumpOptions { Backtraces = false });
        Assert.All(core.Threads, t => Assert.Empty(t.Frames));
        Assert.Equal(0, reader.Symbolizer.DwarfFilesLoaded);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void OnlyTheModulesFramesLandInOpenTheirDwarfOnceForEveryCoreOfTheProgram()
    {
        var (exe, first) = Kernel("segv");
        var (_, second) = Kernel("segv", "-again"); // another run of the same program
        using var reader = new CoreDumpReader(NullLogger.Instance);
        var a = reader.Read(first);
        // The program's own DWARF and libc's debug file: not ld.so's, which has one too but holds no frame.
        var modules = a.Threads.SelectMany(t => t.Frames).Where(f => f.Line is not null).Select(f => f.ModulePath).Distinct().Order().ToList();
        Assert.Equal(new[] { "/usr/lib/x86_64-linux-gnu/libc.so.6", exe }.Order(), modules);
        Assert.Contains(a.BuildIds, b => b.Path.Contains("ld-linux", StringComparison.Ordinal));
        Assert.Equal(2, reader.Symbolizer.DwarfFilesLoaded);
        var names = reader.Symbolizer.LoadedDwarf.Select(d => d.Name).Order().ToList();
        Assert.Contains(exe, names);
        Assert.Contains(names, n => n.StartsWith("/usr/lib/debug/.build-id/", StringComparison.Ordinal));
        int units = reader.Symbolizer.LoadedDwarf.Sum(d => d.ParsedUnitCount);
        int files = reader.Symbolizer.FilesOpened;

        // The second core: other addresses (ASLR), the same code; nothing more is opened or parsed.
        var b = reader.Read(second);
        Assert.NotEqual(a.BuildIds.Single(m => m.Path == exe).LoadBias, b.BuildIds.Single(m => m.Path == exe).LoadBias);
        Assert.Equal(2, reader.Symbolizer.DwarfFilesLoaded);
        Assert.Equal(files, reader.Symbolizer.FilesOpened);
        Assert.Equal(units, reader.Symbolizer.LoadedDwarf.Sum(d => d.ParsedUnitCount));
        Assert.Equal(Describe(a), Describe(b));
    }

    /// <summary>A core's frames without their addresses: what two runs of one program share.</summary>
    private static List<string> Describe(CoreDump core) =>
        core.Threads.OrderBy(t => t.IsCrashingThread ? 0 : 1).SelectMany(t => t.Frames.Select(f => $"{f.Symbol}+{f.Offset} {f.File}:{f.Line}:{f.Column} {f.IsInlined}")).ToList();
}
