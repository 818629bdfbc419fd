using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Procfs;

/// <summary>/proc parsing against real processes with awkward mappings.</summary>
public class ProcFsTests
{
    [Fact]
    public void MapsKeepSpacesSplitDeletedAndClassifyPseudoPaths()
    {
        string dir = Directory.CreateTempSubdirectory("pslt maps ").FullName;
        try
        {
            using var p = FixtureProcess.Start(Fixtures.Build("mapnames"), dir);
            var maps = ProcFs.ReadMaps(p.Pid);
            var spaced = maps.Single(m => m.Start == p.Address("spaced"));
            Assert.Equal(Path.Combine(dir, "name with spaces (1).bin"), spaced.Path);
            Assert.False(spaced.IsDeleted);
            Assert.Equal("r--s", spaced.Permissions);
            Assert.Equal(MappingKind.File, spaced.Kind);
            Assert.Equal((ulong)new FileInfo(spaced.Path!).Length, spaced.Size);

            var deleted = maps.Single(m => m.Start == p.Address("deleted"));
            Assert.Equal(Path.Combine(dir, "gone soon.bin"), deleted.Path);
            Assert.True(deleted.IsDeleted);

            var anon = maps.Single(m => m.Contains(p.Address("anon")));
            Assert.True(anon.Kind is MappingKind.Anonymous or MappingKind.Heap);
            Assert.Contains(maps, m => m.Kind == MappingKind.Stack && m.Path == "[stack]");
            Assert.Contains(maps, m => m.Kind == MappingKind.Vdso);
            Assert.Contains(maps, m => m.Kind == MappingKind.File && m.IsExecutable && m.Path!.EndsWith("/mapnames", StringComparison.Ordinal));

            // Every line round-trips: same count as the file has lines, and inode/device of files are real.
            string raw = File.ReadAllText($"/proc/{p.Pid}/maps");
            Assert.Equal(raw.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length, maps.Count);
            var exe = new FileInfo(Fixtures.Build("mapnames"));
            Assert.Contains(maps, m => m.Path == exe.FullName && m.Inode > 0);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void StatusCommAndCommandLineDescribeTheProcess()
    {
        using var p = FixtureProcess.Start(Fixtures.Build("symbols"), "first arg", "second");
        var status = ProcFs.ReadStatus(p.Pid);
        Assert.Equal("symbols", status.Name);
        Assert.Equal(p.Pid, status.Tgid);
        Assert.Equal(Environment.ProcessId, status.ParentPid);
        Assert.Equal(0, status.TracerPid);
        Assert.Equal(1, status.Threads);
        Assert.Equal("symbols", ProcFs.ReadComm(p.Pid));
        var cmdline = ProcFs.ReadCommandLine(p.Pid);
        Assert.Equal(new[] { Fixtures.Build("symbols"), "first arg", "second" }, cmdline);
        Assert.Contains(p.Pid, ProcFs.ListProcesses());
        Assert.Equal(new[] { p.Pid }, ProcFs.ListThreads(p.Pid));
    }

    [Fact]
    public void AMissingProcessIsProcessNotFound()
    {
        int pid = DeadPid();
        Assert.Equal(pid, Assert.Throws<ProcessNotFoundException>(() => ProcFs.ReadMaps(pid)).ProcessId);
        Assert.Throws<ProcessNotFoundException>(() => ProcFs.ReadStatus(pid));
        Assert.Throws<ProcessNotFoundException>(() => ProcFs.ListThreads(pid));
    }

    [Fact]
    public void MalformedMapsLinesAreBadInput()
    {
        Assert.Throws<BadInputFormatException>(() => MemoryMapping.Parse("zzzz-1000 r-xp 00000000 08:01 1 /x"));
        Assert.Throws<BadInputFormatException>(() => MemoryMapping.Parse("1000-2000 r-xp"));
        var m = MemoryMapping.Parse("7f00-7f10 rw-p 00000000 00:00 0 ");
        Assert.Equal(MappingKind.Anonymous, m.Kind);
        Assert.Null(m.Path);
    }

    /// <summary>A pid that existed a moment ago and has been reaped.</summary>
    internal static int DeadPid()
    {
        using var p = System.Diagnostics.Process.Start("/bin/true")!;
        p.WaitForExit();
        int pid = p.Id;
        Assert.False(Directory.Exists($"/proc/{pid}"));
        return pid;
    }
}
