using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Snapshot;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Snapshot;

/// <summary>Launch mode (snappy-start): run until the first unreplayable system call, snapshot, end the program.</summary>
public class LaunchSnapshotTests
{
    private static string Exe => Fixtures.Build("launch", "-pthread");

    [PrivilegedFact("ptrace of a launched program")]
    public void StopsAtTheFirstWriteWithTheHeapInMmapsAndTheRestoreState()
    {
        string core = Path.Combine(Fixtures.ScratchDirectory, $"launch-{Guid.NewGuid():N}.core");
        string stdout = Path.Combine(Fixtures.ScratchDirectory, $"launch-{Guid.NewGuid():N}.out");
        var snap = new LaunchSnapshotter(NullLogger.Instance).Save(Exe, Array.Empty<string>(), core, SnapshotMemory.Default, stdout: stdout);
        Assert.Equal(1, snap.StoppedAtSyscallNumber);
        Assert.StartsWith("write(0x1, ", snap.StoppedAtSyscall);
        Assert.Equal("", File.ReadAllText(stdout)); // the write never happened
        Assert.False(Directory.Exists($"/proc/{snap.Pid}"), "the program was not ended");

        using var reader = new CoreDumpReader(NullLogger.Instance);
        var dump = reader.Read(core);
        Assert.Equal("PSLinuxTrace", dump.Producer);
        var t = Assert.Single(dump.Threads);
        Assert.Equal(1UL, t.Registers.OrigRax);                          // stopped at the entry of write
        Assert.Equal(new[] { "pslt_first_write", "main" }, t.Frames.Where(f => f.ModulePath == Exe).Select(f => f.Symbol).Take(2));

        // The heap block lives in an mmap (brk was refused) and holds what the program wrote there.
        using var elf = ElfFile.Open(Exe);
        ulong bias = dump.BuildIds.Single(b => b.Path == Exe).LoadBias;
        ulong block = dump.ReadPointer(bias + elf.SymbolTable!.Lookup("pslt_heap_block")!.Value);
        Assert.Equal("pslt-heap-marker", dump.ReadString(block));
        var heap = dump.Mappings.Single(m => block >= m.Start && block < m.End);
        Assert.Null(heap.Path);
        Assert.DoesNotContain(dump.Mappings, m => m.Start <= block && block < m.End && m.Path == "[heap]");
        // What it read from the file is in the core.
        Assert.Equal("\u007fELF"u8.ToArray(), dump.ReadMemory(bias + elf.SymbolTable.Lookup("pslt_file_head")!.Value, 4));

        // gdb agrees.
        var gdb = Tool.Run("gdb", new[] { "-nx", "-batch", "-iex", "set debuginfod enabled off", "-ex", "bt", "-ex", "p pslt_heap_block", Exe, core });
        Assert.Contains("pslt_first_write", gdb.StdOut);
        Assert.Contains("\"pslt-heap-marker\"", gdb.StdOut);

        // The restore note, beside the producer note every snapshot has.
        using var coreElf = ElfFile.Open(core);
        var note = coreElf.GetNotes().Single(n => n.Name == CoreDumpReader.SnapshotNoteName && n.Type == CoreDumpReader.RestoreStateNoteType);
        var producer = coreElf.GetNotes().Single(n => n.Name == CoreDumpReader.SnapshotNoteName && n.Type == CoreDumpReader.ProducerNoteType);
        Assert.StartsWith("PSLinuxTrace ", System.Text.Encoding.ASCII.GetString(producer.Descriptor(coreElf)));
        using var json = JsonDocument.Parse(note.Descriptor(coreElf).ToArray());
        Assert.Equal("write", json.RootElement.GetProperty("syscall").GetProperty("name").GetString());
        Assert.Equal(t.Registers.FsBase, json.RootElement.GetProperty("fsBase").GetUInt64());
        Assert.True(json.RootElement.GetProperty("brkRefused").GetInt32() > 0);
        Assert.Contains(json.RootElement.GetProperty("files").EnumerateArray(), f => f.GetProperty("path").GetString() == Exe);
    }

    [PrivilegedFact("ptrace of a launched program")]
    public void AProgramThatStartsAThreadFirstIsAClearError()
    {
        string core = Path.Combine(Fixtures.ScratchDirectory, $"launch-mt-{Guid.NewGuid():N}.core");
        var ex = Assert.Throws<UnsupportedFeatureException>(() =>
            new LaunchSnapshotter(NullLogger.Instance).Save(Exe, new[] { "threads" }, core, SnapshotMemory.Default));
        Assert.Contains("multi-threaded", ex.Message);
        Assert.False(File.Exists(core));
    }

    [PrivilegedFact("ptrace of a launched program")]
    public void AProgramThatOnlyExitsHasNothingToSnapshot()
    {
        string core = Path.Combine(Fixtures.ScratchDirectory, $"launch-true-{Guid.NewGuid():N}.core");
        // /bin/true's first unreplayable call is exit_group.
        var ex = Assert.ThrowsAny<LinuxTraceException>(() => new LaunchSnapshotter(NullLogger.Instance).Save("true", Array.Empty<string>(), core, SnapshotMemory.Default));
        Assert.Matches("exit", ex.Message);
        Assert.False(File.Exists(core));
        Assert.Throws<FileNotFoundException>(() => new LaunchSnapshotter(NullLogger.Instance).Save("/no/such/program", Array.Empty<string>(), core, SnapshotMemory.Default));
    }
}
