using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Cores;

/// <summary>
/// Real kernel cores compressed by the real zstd, lz4 and xz tools, named as systemd-coredump names
/// them (systemd-coredump itself does not run on these machines: the names and the tools' formats are
/// what it writes): each reads as the core itself, leaves no temporary file behind (after a read, an
/// error or a cancel), and damaged or cut-short data is a BadInputFormatException, never wrong memory.
/// </summary>
public class CompressedCoreTests
{
    private static readonly string BootId = File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim().Replace("-", "");

    /// <summary>The tool's command line for one compression, and the suffix systemd-coredump gives it.</summary>
    public static TheoryData<string, string> Compressors => new()
    {
        { "zstd -q -c", "zst" },
        { "lz4 -q -c", "lz4" },
        // Linked blocks (what liblz4's LZ4F writes by default, so systemd's .lz4), block checksums and the content size.
        { "lz4 -q -c -BD -BX --content-size -B4", "lz4" },
        { "xz -c", "xz" },
        // Many blocks (what xz -T writes).
        { "xz -c --block-size=1MiB", "xz" },
    };

    private static string Compress(string core, string command, string suffix, string? name = null)
    {
        string dir = Path.Combine(Fixtures.ScratchDirectory, "coredump-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        if (name is null)
        {
            // systemd-coredump: core.COMM.UID.BOOTID.PID.USEC_SINCE_EPOCH.SUFFIX in /var/lib/systemd/coredump
            var plain = Read(core);
            name = $"core.{plain.ProcessName}.{plain.UserId}.{BootId}.{plain.Pid}.{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000}.{suffix}";
        }
        string output = Path.Combine(dir, name);
        // The command reads the core as "$0" when it says so (a pipeline), else from its last argument.
        string script = command.Contains("$0") ? $"{command} > \"$1\"" : $"{command} \"$0\" > \"$1\"";
        var r = Tool.Run("sh", new[] { "-c", script, core, output });
        Assert.True(r.ExitCode == 0, $"{command} failed: {r.StdErr}");
        return output;
    }

    private static CoreDump Read(string path, CoreDumpOptions? options = null, CancellationToken cancel = default)
    {
        using var reader = new CoreDumpReader(NullLogger.Instance);
        return reader.Read(path, options, cancel);
    }

    /// <summary>Our descriptors open on a temporary core made from <paramref name="core"/> (unlinked, so "(deleted)").</summary>
    private static List<string> OpenTemporaries(string core) =>
        Directory.GetFiles("/proc/self/fd")
            .Select(fd => { try { return new FileInfo(fd).LinkTarget; } catch (IOException) { return null; } })
            .Where(t => t is not null && t.Contains(".pslinuxtrace-" + Path.GetFileName(core), StringComparison.Ordinal))
            .Select(t => t!).ToList();

    private static void AssertNothingLeft(string core)
    {
        Assert.Empty(OpenTemporaries(core));
        foreach (string dir in new[] { Path.GetTempPath(), Path.GetDirectoryName(core)! })
            Assert.Empty(Directory.GetFiles(dir, ".pslinuxtrace-" + Path.GetFileName(core) + "*"));
    }

    [PrivilegedTheory("a kernel core needs RLIMIT_CORE and core_pattern")]
    [MemberData(nameof(Compressors))]
    public void CompressedCoreReadsAsTheCoreItself(string command, string suffix)
    {
        var (_, plainPath) = CoreFixtures.Kernel("abort", 7);
        string path = Compress(plainPath, command, suffix);
        var plain = Read(plainPath);
        var core = Read(path);

        Assert.Equal(path, core.Path);
        Assert.Equal(suffix == "zst" ? "zstd" : suffix, core.Compression);
        Assert.Equal(new FileInfo(path).Length, core.FileSize);
        Assert.Equal(new FileInfo(plainPath).Length, core.CoreSize);
        Assert.Null(plain.Compression);
        Assert.Equal(plain.FileSize, plain.CoreSize);
        Assert.Equal((plain.Pid, plain.Signal, plain.Executable, plain.Producer, plain.IsTruncated), (core.Pid, core.Signal, core.Executable, core.Producer, core.IsTruncated));
        Assert.Equal(8, core.Threads.Length);
        foreach (var (a, b) in plain.Threads.Zip(core.Threads))
        {
            Assert.Equal((a.Tid, a.IsCrashingThread, a.Registers.Rip, a.Registers.Rsp), (b.Tid, b.IsCrashingThread, b.Registers.Rip, b.Registers.Rsp));
            Assert.Equal(a.Frames, b.Frames);
        }
        Assert.Equal(plain.Mappings, core.Mappings);
        Assert.Equal(plain.BuildIds, core.BuildIds);
        Assert.Equal(plain.Signature, core.Signature);
        AssertNothingLeft(path);

        // The object outlives its temporary file: its memory is decompressed again, here the crashing
        // thread's stack and the executable's name, equal to the plain core's.
        ulong rsp = core.CrashingThread!.Registers.Rsp;
        int length = (int)Math.Min(8192, core.Mappings.Single(m => rsp >= m.Start && rsp < m.End).End - rsp);
        Assert.Equal(plain.ReadMemory(rsp, length), core.ReadMemory(rsp, length));
        ulong execfn = core.Auxv.Single(a => a.Name == "AT_EXECFN").Value;
        Assert.Equal(plain.ReadString(execfn), core.ReadString(execfn));
        AssertNothingLeft(path);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void TheFormatIsToldByItsMagicBytesNotItsName()
    {
        var (_, plainPath) = CoreFixtures.Kernel("segv", 0);
        string renamed = Compress(plainPath, "xz -c", "", "core.12345");          // no suffix at all
        string misnamed = Compress(plainPath, "lz4 -q -c", "", "core.crash.zst"); // an LZ4 frame named .zst
        string plainNamedZst = Path.Combine(Path.GetDirectoryName(renamed)!, "plain.zst");
        File.Copy(plainPath, plainNamedZst);
        Assert.Equal("xz", Read(renamed).Compression);
        Assert.Equal("lz4", Read(misnamed).Compression);
        var plain = Read(plainNamedZst);
        Assert.Null(plain.Compression);
        Assert.Equal("SIGSEGV", plain.Signal);
    }

    [PrivilegedTheory("a kernel core needs RLIMIT_CORE and core_pattern")]
    [MemberData(nameof(Compressors))]
    public void CutShortCompressedCoreIsBadInputAndLeavesNothing(string command, string suffix)
    {
        var (_, plainPath) = CoreFixtures.Kernel("segv", 0);
        string path = Compress(plainPath, command, suffix);
        long full = new FileInfo(path).Length;
        foreach (long keep in new[] { 6, full / 2, full - 1 })
        {
            string cut = path + $".cut{keep}";
            using (var s = File.OpenRead(path))
            using (var d = File.Create(cut))
            {
                var bytes = new byte[keep];
                s.ReadExactly(bytes);
                d.Write(bytes);
            }
            var ex = Assert.Throws<BadInputFormatException>(() => Read(cut));
            Assert.Contains(cut, ex.Message);
            Assert.Contains($"of its {keep} bytes", ex.Message); // how far decompression got
            AssertNothingLeft(cut);
        }
    }

    [PrivilegedTheory("a kernel core needs RLIMIT_CORE and core_pattern")]
    [MemberData(nameof(Compressors))]
    public void DamagedCompressedCoreIsBadInputOrTheSameCore(string command, string suffix)
    {
        var (_, plainPath) = CoreFixtures.Kernel("segv", 0);
        string path = Compress(plainPath, command, suffix);
        var plain = Read(plainPath);
        byte[] original = File.ReadAllBytes(path);
        var random = new Random(15);
        int errors = 0;
        for (int i = 0; i < 12; i++)
        {
            byte[] damaged = (byte[])original.Clone();
            int at = i == 0 ? 4 : random.Next(original.Length); // 4: the first byte after the magic
            damaged[at] ^= (byte)(1 + random.Next(255));
            string file = path + $".damaged{i}";
            File.WriteAllBytes(file, damaged);
            try
            {
                // A byte the format does not check (say, a window size still large enough) may change
                // nothing; then the core must be the same core, never another one.
                var core = Read(file);
                Assert.Equal(plain.Signature, core.Signature);
                Assert.Equal(plain.Threads.Single().Frames, core.Threads.Single().Frames);
                Assert.Equal(plain.ReadMemory(plain.Threads[0].Registers.Rsp, 4096), core.ReadMemory(core.Threads[0].Registers.Rsp, 4096));
            }
            catch (BadInputFormatException ex)
            {
                Assert.Contains(file, ex.Message);
                errors++;
            }
            AssertNothingLeft(file);
        }
        Assert.True(errors >= 6, $"only {errors} of 12 damaged files were refused");
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void CoreCutShortBeforeCompressionReadsAsATruncatedCore()
    {
        // systemd-coredump cuts cores at ExternalSizeMax (2 GiB by default) and compresses what is left.
        var (_, plainPath) = CoreFixtures.Kernel("abort", 3);
        long half = new FileInfo(plainPath).Length / 2;
        string path = Compress(plainPath, $"head -c {half} \"$0\" | zstd -q -c", "zst");
        var core = Read(path);
        Assert.Equal("zstd", core.Compression);
        Assert.Equal(half, core.CoreSize);
        Assert.True(core.IsTruncated);
        Assert.Contains(core.Warnings, w => w.Contains("truncated"));
        Assert.Equal("SIGABRT", core.Signal);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void CompressedFileThatIsNotACoreIsBadInput()
    {
        var (exe, _) = CoreFixtures.Kernel("segv", 0);
        string text = Compress("/proc/self/maps", "cat \"$0\" | zstd -q -c", "zst", "core.text.zst");
        Assert.Contains("not an ELF file", Assert.Throws<BadInputFormatException>(() => Read(text)).Message);
        string notCore = Compress(exe, "zstd -q -c", "zst", "core.exe.zst");
        var ex = Assert.Throws<BadInputFormatException>(() => Read(notCore));
        Assert.Contains(notCore, ex.Message);
        Assert.Contains("not a core dump", ex.Message);
        AssertNothingLeft(notCore);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void TemporaryFileIsPrivateSparseAndGoneOnCancel()
    {
        var (_, plainPath) = CoreFixtures.Kernel("abort", 7); // eight thread stacks, mostly never touched
        string path = Compress(plainPath, "zstd -q -c", "zst");
        using var cancel = new CancellationTokenSource();
        int calls = 0;
        void Progress(long done, long total)
        {
            Assert.InRange(done, 1, total);
            if (++calls < 8) return;
            // Mid-way: one descriptor on an unlinked file in TMPDIR, owner-only, with holes for the zeros.
            var fd = Directory.GetFiles("/proc/self/fd").Single(f => OpenTemporaries(path).Contains(new FileInfo(f).LinkTarget ?? ""));
            string target = new FileInfo(fd).LinkTarget!;
            Assert.StartsWith(Path.GetTempPath(), target);
            Assert.EndsWith(" (deleted)", target);
            var stat = Tool.Check("stat", "-L", "-c", "%a %b %B %s", fd.Replace("/self/", $"/{Environment.ProcessId}/")).Trim().Split(' ');
            Assert.Equal("600", stat[0]);
            long allocated = long.Parse(stat[1]) * long.Parse(stat[2]), written = (long)calls << 20; // a call per MiB
            Assert.True(allocated < written / 2, $"{allocated} bytes allocated for {written} written: not sparse");
            cancel.Cancel();
        }
        Assert.ThrowsAny<OperationCanceledException>(() => Read(path, new CoreDumpOptions { DecompressionProgress = Progress }, cancel.Token));
        Assert.Equal(8, calls);
        AssertNothingLeft(path);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void BigAnonymousMemoryIsLeftOutOfTheTemporaryFileYetReadsTheSame()
    {
        var (_, plainPath) = CoreFixtures.Kernel("heap", 0);
        ulong heap = Convert.ToUInt64(CoreFixtures.Printed(plainPath)["pslt_heap"][2..], 16);
        byte Expected(ulong address) => (byte)((address - heap) * 7 + 1); // what the fixture wrote there
        string path = Compress(plainPath, "zstd -q -c", "zst");
        var plain = Read(plainPath);
        var segment = plain.Mappings.Single(m => heap >= m.Start && heap < m.End);
        Assert.Null(segment.Path);
        Assert.InRange(segment.BytesInCore, 24UL << 20, 25UL << 20);

        using (var core = CoreFile.Open(path))
        {
            // The 24 MiB malloc is the one segment left out: a hole in the temporary file...
            var p = core.Elf.ProgramHeaders.Single(p => p.VirtualAddress == segment.Start);
            var hole = new byte[1 << 20];
            Assert.Equal(hole.Length, core.Elf.Read(p.Offset + (8 << 20), hole));
            Assert.True(hole.AsSpan().IndexOfAnyExcept((byte)0) < 0);
            // ...which a read during the reading still sees with its bytes, decompressed again.
            var bytes = new byte[4096];
            Assert.Equal(bytes.Length, core.Memory.Read(heap + (8 << 20), bytes));
            for (int i = 0; i < bytes.Length; i++) Assert.Equal(Expected(heap + (8 << 20) + (ulong)i), bytes[i]);
            // Every other segment is there.
            foreach (var other in core.Elf.ProgramHeaders.Where(o => o.Type == PSLinuxTrace.Engine.Elf.ElfProgramHeader.PT_LOAD && o.FileSize > 0 && o.VirtualAddress != segment.Start))
            {
                var mine = new byte[(int)Math.Min(other.FileSize, 1 << 16)];
                core.Elf.Read(other.Offset, mine);
                Assert.Equal(plain.ReadMemory(other.VirtualAddress, mine.Length), mine);
            }
        }
        var read = Read(path);
        Assert.Equal(plain.Threads.Single().Frames, read.Threads.Single().Frames);
        Assert.Equal(plain.Signature, read.Signature);
        ulong late = heap + (20 << 20);
        Assert.Equal(plain.ReadMemory(late, 64), read.ReadMemory(late, 64));
        Assert.Equal(Expected(late), read.ReadMemory(late, 1)[0]);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void SystemdCoredumpFolderReadsWithOneReaderAndTheSameSignatures()
    {
        // What Get-ChildItem /var/lib/systemd/coredump | Read-CoreDump does: one reader, every file.
        var cores = new[] { CoreFixtures.Kernel("segv", 0).Core, CoreFixtures.Kernel("abort", 3).Core, CoreFixtures.Kernel("segv", 0, run: 1).Core };
        string dir = Path.Combine(Fixtures.ScratchDirectory, "var-lib-systemd-coredump");
        Directory.CreateDirectory(dir);
        var suffixes = new[] { ("zstd -q -c", "zst"), ("lz4 -q -c", "lz4"), ("xz -c", "xz") };
        for (int i = 0; i < cores.Length; i++)
        {
            string compressed = Compress(cores[i], suffixes[i].Item1, suffixes[i].Item2);
            File.Move(compressed, Path.Combine(dir, Path.GetFileName(compressed)));
        }
        using var reader = new CoreDumpReader(NullLogger.Instance);
        var read = Directory.GetFiles(dir).Order().Select(f => reader.Read(f)).ToList();
        Assert.Equal(3, read.Count);
        Assert.All(read, c => Assert.Matches(@"^core\.[^.]+\.0\.[0-9a-f]{32}\.\d+\.\d+\.(zst|lz4|xz)$", Path.GetFileName(c.Path)));
        Assert.Equal(new[] { "lz4", "xz", "zstd" }, read.Select(c => c.Compression!).Order());
        // The two SIGSEGV runs are one crash; the abort another.
        Assert.Equal(2, read.GroupBy(c => c.Signature).Count());
    }
}

/// <summary>Our LZ4 frame reader against lz4(1)'s frames: concatenated and skippable frames, and thousands of damaged ones.</summary>
public class Lz4FrameStreamTests
{
    private static (byte[] Original, byte[] Compressed) Frame(string flags)
    {
        var (_, core) = CoreFixtures.Kernel("segv", 0);
        string dir = Directory.CreateTempSubdirectory("pslt-lz4-").FullName;
        try
        {
            // The core's first 256 KiB: its headers, notes and the start of its memory, a mix of text, zeros and code.
            byte[] original = new byte[256 << 10];
            using (var f = File.OpenRead(core)) f.ReadExactly(original);
            File.WriteAllBytes(Path.Combine(dir, "in"), original);
            Tool.Check("lz4", ["-q", "-f", .. flags.Split(' ', StringSplitOptions.RemoveEmptyEntries), Path.Combine(dir, "in"), Path.Combine(dir, "out")]);
            return (original, File.ReadAllBytes(Path.Combine(dir, "out")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static byte[] Decode(byte[] compressed)
    {
        using var s = new Lz4FrameStream(new MemoryStream(compressed));
        using var output = new MemoryStream();
        s.CopyTo(output);
        return output.ToArray();
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void ConcatenatedAndSkippableFramesReadAsLz4Reads()
    {
        var (original, frame) = Frame("-BD -B4");
        byte[] skippable = [0x5a, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]; // magic 0x184D2A5A, 4 bytes of user data
        byte[] file = [.. frame, .. skippable, .. frame];
        string path = Path.Combine(Fixtures.ScratchDirectory, "two-frames.lz4");
        File.WriteAllBytes(path, file);
        var r = Tool.Run("sh", ["-c", "lz4 -dc \"$0\" | wc -c", path]);
        Assert.Equal((2 * original.Length).ToString(), r.StdOut.Trim()); // lz4 itself reads the file as two frames
        Assert.Equal([.. original, .. original], Decode(file));
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void DamagedFramesGiveInvalidDataNeverOtherBytes()
    {
        foreach (string flags in new[] { "-BD -BX --content-size -B4", "-B5" })
        {
            var (original, frame) = Frame(flags);
            Assert.Equal(original, Decode(frame));
            var random = new Random(1504);
            int refused = 0;
            for (int i = 0; i < 2000; i++)
            {
                byte[] damaged = (byte[])frame.Clone();
                if (i % 10 == 0) damaged = damaged[..random.Next(damaged.Length)];
                else
                    for (int k = random.Next(1, 4); k > 0; k--)
                        damaged[random.Next(damaged.Length)] ^= (byte)random.Next(1, 256);
                try
                {
                    // lz4(1)'s frames carry a content checksum: what decodes must be the original.
                    Assert.Equal(original, Decode(damaged));
                }
                catch (InvalidDataException) { refused++; }
                catch (EndOfStreamException) { refused++; }
            }
            Assert.True(refused > 1900, $"{flags}: only {refused} of 2000 damaged frames were refused");
        }
    }
}
