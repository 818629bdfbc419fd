using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Cores;

/// <summary>
/// 10,000+ damaged copies of a real kernel core (truncations, and random damage to the header,
/// program headers, notes and the top of each thread's stack): each one either reads or fails with BadInputFormatException, within
/// a time bound. Plus the plain bad inputs: not ELF, ELF but not a core, a truncated core.
/// </summary>
public class CorruptCoreTests
{
    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void TenThousandDamagedCoresGiveOnlyTypedErrors()
    {
        var (_, corePath) = CoreFixtures.Kernel("abort", 3);
        byte[] original = File.ReadAllBytes(corePath);
        using var intact = ElfFile.FromBytes((byte[])original.Clone(), "intact");
        var regions = new List<(int Offset, int Length)> { (0, 64), ((int)intact.Header.ProgramHeaderOffset, (int)intact.Header.ProgramHeaderCount * 56) };
        foreach (var p in intact.ProgramHeaders.Where(p => p.Type == ElfProgramHeader.PT_NOTE))
            regions.Add(((int)p.Offset, (int)Math.Min(p.FileSize, 64 * 1024)));
        int noteEnd = regions.Max(r => r.Offset + r.Length);
        // The top of every thread's stack too: damaged saved registers and return addresses must end a
        // backtrace (a garbage CFA, a loop, an unreadable frame), never throw or spin.
        int stackRegions = 0;
        using (var parsed = CoreFile.FromBytes((byte[])original.Clone(), "intact"))
            foreach (var t in parsed.Threads)
            {
                ulong rsp = t.Status.Registers.rsp;
                var p = parsed.Elf.ProgramHeaders.FirstOrDefault(p => p.Type == ElfProgramHeader.PT_LOAD && rsp >= p.VirtualAddress && rsp < p.VirtualAddress + p.FileSize);
                if (p is null) continue;
                ulong offset = p.Offset + (rsp - p.VirtualAddress);
                regions.Add(((int)offset, (int)Math.Min(2048, p.Offset + p.FileSize - offset)));
                stackRegions++;
            }
        Assert.Equal(4, stackRegions);

        using var reader = new CoreDumpReader(NullLogger.Instance);
        int typed = 0, fine = 0;
        void Try(byte[] bytes, string what)
        {
            try
            {
                using var core = CoreFile.FromBytes(bytes, what);
                var info = reader.Read(core, what);
                _ = info.Threads.Sum(t => t.Frames.Length);
                fine++;
            }
            catch (BadInputFormatException)
            {
                typed++;
            }
            catch (Exception ex)
            {
                Assert.Fail($"{what}: {ex.GetType().Name}: {ex.Message}\n{ex.StackTrace}");
            }
        }

        var task = Task.Run(() =>
        {
            // 1,000 truncations, dense over the headers and notes, sparse over the memory.
            var rng = new Random(5);
            for (int i = 0; i < 1000; i++)
            {
                int cut = i < 700 ? rng.Next(1, noteEnd + 1) : rng.Next(noteEnd, original.Length);
                Try(original[..cut], $"truncated at {cut}");
            }
            // 9,000 copies with 1-8 damaged bytes in the structures (mutated in place, then restored).
            byte[] work = (byte[])original.Clone();
            for (int i = 0; i < 9000; i++)
            {
                var changed = new List<(int, byte)>();
                int n = 1 + rng.Next(8);
                for (int k = 0; k < n; k++)
                {
                    var (off, len) = regions[rng.Next(regions.Count)];
                    int at = off + rng.Next(len);
                    if (at < 16 && rng.Next(8) != 0) at = 16 + rng.Next(48);
                    changed.Add((at, work[at]));
                    work[at] = rng.Next(4) switch { 0 => 0xff, 1 => 0, 2 => (byte)(work[at] ^ (1 << rng.Next(8))), _ => (byte)rng.Next(256) };
                }
                Try(work, $"mutant {i}");
                for (int k = changed.Count - 1; k >= 0; k--) work[changed[k].Item1] = changed[k].Item2;
            }
        });
        Assert.True(task.Wait(TimeSpan.FromMinutes(4)), "reading damaged cores did not finish in 4 minutes: a loop or a huge allocation?");
        task.GetAwaiter().GetResult();
        Assert.Equal(10_000, typed + fine);
        Assert.True(typed > 100, $"only {typed} of 10,000 damaged cores were rejected: the damage did not reach the structures");
    }

    [Fact]
    public void NonElfAndNonCoreFilesAreBadInput()
    {
        using var reader = new CoreDumpReader(NullLogger.Instance);
        string text = Path.Combine(Fixtures.ScratchDirectory, "not-a-core.txt");
        File.WriteAllText(text, "this is not a core file\n");
        Assert.Contains("not an ELF", Assert.Throws<BadInputFormatException>(() => reader.Read(text)).Message);
        var ex = Assert.Throws<BadInputFormatException>(() => reader.Read(Fixtures.Build("symbols")));
        Assert.Contains("not a core dump", ex.Message);
        Assert.Throws<FileNotFoundException>(() => reader.Read(Path.Combine(Fixtures.ScratchDirectory, "no-such-core")));
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void ATruncatedCoreReadsWhatIsThereWithAWarning()
    {
        var (_, corePath) = CoreFixtures.Kernel("segv", 0);
        byte[] bytes = File.ReadAllBytes(corePath);
        string cut = Path.Combine(Fixtures.ScratchDirectory, "truncated-core");
        File.WriteAllBytes(cut, bytes[..(bytes.Length * 3 / 4)]);
        using var reader = new CoreDumpReader(NullLogger.Instance);
        var info = reader.Read(cut);
        Assert.True(info.IsTruncated);
        Assert.Contains(info.Warnings, w => w.Contains("truncated", StringComparison.Ordinal));
        Assert.Equal("SIGSEGV", info.Signal);
        Assert.Single(info.Threads);
    }
}
