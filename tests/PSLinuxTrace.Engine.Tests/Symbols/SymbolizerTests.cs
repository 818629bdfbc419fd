using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Symbols;
using PSLinuxTrace.Engine.Tests.Cores;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using PSLinuxTrace.Engine.Unwind;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Symbols;

/// <summary>The shared symbolizer on live processes: module resolution from /proc/PID/maps and memory, and its caches.</summary>
public sealed class SymbolizerTests
{
    [PrivilegedFact("reads another process's memory through /proc/PID/mem")]
    public void ADeletedExecutableIsKnownByItsImageInMemoryAndMatchedByExecutablePath()
    {
        string copy = Path.Combine(Fixtures.ScratchDirectory, $"deleted-{Guid.NewGuid():N}");
        File.Copy(CoreFixtures.Executable, copy);
        using var p = FixtureProcess.Start(copy, "wait", "0");
        // The same bytes elsewhere, and the mapped file unlinked: maps says "(deleted)".
        string moved = copy + ".moved";
        File.Copy(copy, moved);
        File.Delete(copy);
        try
        {
            using var memory = MemoryFile.Open(p.Pid);
            using var symbolizer = new Symbolizer(NullLogger.Instance);
            using var original = ElfFile.Open(moved);

            var map = symbolizer.MapModules(memory, ModuleLayout.FromProcess(p.Pid));
            var exe = map.Executable!;
            Assert.Equal(copy + " (deleted)", exe.Path);
            Assert.Equal(original.BuildIdHex, exe.BuildId);
            Assert.Null(exe.LocalPath);
            Assert.True(exe.LoadBiasKnown);
            Assert.Equal(exe.Start, exe.LoadBias); // PIE, linked at 0: its image's bias

            var warnings = new List<string>();
            var found = symbolizer.MapModules(memory, ModuleLayout.FromProcess(p.Pid), new ModuleSearchOptions { ExecutablePath = moved }, warnings.Add);
            Assert.Empty(warnings);
            Assert.Equal(moved, found.Executable!.LocalPath);
            Assert.True(found.Executable.Matches);
            Assert.Equal(exe.LoadBias, found.Executable.LoadBias);

            // Another program in its place is refused, with the reason.
            var wrong = symbolizer.MapModules(memory, ModuleLayout.FromProcess(p.Pid), new ModuleSearchOptions { ExecutablePath = Fixtures.Build("symbols") }, warnings.Add);
            Assert.Null(wrong.Executable!.LocalPath);
            Assert.Contains(warnings, w => w.Contains("does not match", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(moved);
        }
    }

    [PrivilegedFact("reads another process's memory through /proc/PID/mem")]
    public void AStrippedProgramIsNamedFromTheDebugFileItsDebugLinkNames()
    {
        // The usual split: the debug file beside the program, named by .gnu_debuglink (no /usr/lib/debug copy of this build-id).
        string dir = Directory.CreateTempSubdirectory("pslt-debuglink-").FullName;
        string exe = Path.Combine(dir, "stripped"), debug = exe + ".debug";
        File.Copy(CoreFixtures.Executable, exe);
        Tool.Check("objcopy", "--only-keep-debug", exe, debug);
        Tool.Check("strip", "--strip-all", exe);
        Tool.Check("objcopy", "--add-gnu-debuglink=" + debug, exe);
        try
        {
            using (var stripped = ElfFile.Open(exe))
            {
                Assert.Null(stripped.SymbolTable);
                Assert.Null(stripped.DynamicSymbols!.Lookup("pslt_crash_here"));
            }
            using var p = FixtureProcess.Start(exe, "wait", "0");
            using var memory = MemoryFile.Open(p.Pid);
            using var symbolizer = new Symbolizer(NullLogger.Instance);
            var map = symbolizer.MapModules(memory, ModuleLayout.FromProcess(p.Pid));
            Assert.Equal(debug, map.Executable!.DebugPath);
            // The fixture printed where pslt_crash_here is; a pc inside it is named from the debug file's .symtab.
            ulong crashHere = p.Address("pslt_crash_here");
            var frame = Assert.Single(symbolizer.Symbolize(map, new[] { new UnwoundFrame(crashHere + 4, 0, UnwindMethod.Context, false) }));
            Assert.Equal(("pslt_crash_here", 4UL, exe), (frame.Symbol, frame.Offset, frame.ModulePath));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [PrivilegedFact("reads other processes' memory through /proc/PID/mem")]
    public void TwoProcessesOfOneProgramParseEachFileOnce()
    {
        using var a = FixtureProcess.Start(CoreFixtures.Executable, "wait", "0");
        using var b = FixtureProcess.Start(CoreFixtures.Executable, "wait", "0");
        using var symbolizer = new Symbolizer(NullLogger.Instance);
        using var memoryA = MemoryFile.Open(a.Pid);
        using var memoryB = MemoryFile.Open(b.Pid);
        var mapA = symbolizer.MapModules(memoryA, ModuleLayout.FromProcess(a.Pid));
        int opened = symbolizer.FilesOpened;
        var mapB = symbolizer.MapModules(memoryB, ModuleLayout.FromProcess(b.Pid));
        Assert.Equal(opened, symbolizer.FilesOpened);
        Assert.Equal(mapA.Modules.Select(m => (m.Path, m.BuildId, m.LocalPath, m.DebugPath)), mapB.Modules.Select(m => (m.Path, m.BuildId, m.LocalPath, m.DebugPath)));
        // ASLR: the same files at other places.
        Assert.NotEqual(mapA.Executable!.LoadBias, mapB.Executable!.LoadBias);
    }
}
