using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;
using Xunit;
using Xunit.Abstractions;

namespace PSLinuxTrace.Engine.Tests.Dwarf;

/// <summary>
/// Damaged DWARF built from real fixtures: every section truncated, bytes overwritten at random,
/// LEB128 runs and huge counts planted, whole compressed ELF files damaged. Load, Lookup and the call-site queries must
/// answer (fully or in part) or throw BadInputFormatException: never another exception, a hang,
/// or an allocation out of proportion to the input.
/// </summary>
public sealed class CorruptDwarfTests(ITestOutputHelper output)
{
    private static readonly string[] SectionNames =
        Enum.GetValues<DwarfSectionKind>().Select(DwarfSections.SectionName).ToArray();

    /// <summary>The fixture's DWARF sections (inflated) and the addresses the lookups probe.</summary>
    private static (Dictionary<string, byte[]> Sections, ulong[] Addresses) Load(string build)
    {
        using var elf = ElfFile.Open(DwarfFixtures.Get(build));
        var s = DwarfSections.FromElf(elf);
        var sections = Enum.GetValues<DwarfSectionKind>().Where(s.Has).ToDictionary(DwarfSections.SectionName, k => s[k].ToArray());
        var info = DwarfSourceInfo.Load(s)!;
        // Every row address, thinned, plus addresses no unit covers.
        var addresses = info.AllLineRowAddresses().Where((_, i) => i % 3 == 0).Concat(new ulong[] { 0, 1, ulong.MaxValue }).ToArray();
        return (sections, addresses);
    }

    /// <summary>Loads and looks up everything; returns how many lookups threw BadInputFormatException or left warnings.</summary>
    private static int Exercise(Dictionary<string, byte[]> sections, ulong[] addresses, string what)
    {
        int bad = 0;
        long before = GC.GetAllocatedBytesForCurrentThread();
        long input = sections.Values.Sum(b => (long)b.Length);
        try
        {
            var info = DwarfSourceInfo.Load(DwarfSections.FromBytes(sections));
            if (info is null) return 0;
            foreach (ulong a in addresses)
            {
                try
                {
                    foreach (var f in info.Lookup(a)) _ = f.ToString();
                    // The tail-call search's questions too: a call site at the address, the tail calls of a function starting there.
                    _ = info.CallSiteReturningTo(a)?.ToString();
                    foreach (var c in info.TailCallsFrom(a)) _ = c.ToString();
                }
                catch (BadInputFormatException ex)
                {
                    Assert.False(string.IsNullOrWhiteSpace(ex.Message));
                    bad++;
                }
            }
            if (info.Warnings.Count > 0) bad++;
            // What the reader keeps and throws away stays in proportion to its input (plus the frames it returns).
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < 64 * input + 2000 * addresses.Length + (4 << 20), $"{what}: {allocated} bytes allocated for {input} bytes of DWARF");
        }
        catch (Exception ex) when (ex is not BadInputFormatException and not Xunit.Sdk.XunitException)
        {
            Assert.Fail($"{what}: {ex.GetType().Name}: {ex.Message}\n{ex.StackTrace}");
        }
        return bad;
    }

    private static void WithDeadline(Action body)
    {
        var task = Task.Run(body);
        Assert.True(task.Wait(TimeSpan.FromMinutes(1)), "the reader did not finish: a loop on damaged input?");
        task.GetAwaiter().GetResult();
    }

    public static TheoryData<string> Builds() => new() { "gcc-O2", "gcc-O2-dwarf4", "clang-O2", "clang-O2-dwarf4", "g++-O2" };

    [Theory, MemberData(nameof(Builds))]
    public void TruncatedSections(string build) => WithDeadline(() =>
    {
        var (sections, addresses) = Load(build);
        foreach (string name in sections.Keys.ToList())
        {
            byte[] whole = sections[name];
            for (int n = 0; n < whole.Length; n += Math.Max(1, whole.Length / 60))
            {
                var damaged = new Dictionary<string, byte[]>(sections) { [name] = whole[..n] };
                Exercise(damaged, addresses, $"{name} cut to {n} bytes");
            }
        }
    });

    [Theory, MemberData(nameof(Builds))]
    public void RandomDamage(string build) => WithDeadline(() =>
    {
        var (sections, addresses) = Load(build);
        var random = new Random(build.GetHashCode(StringComparison.Ordinal) & 0x7fff);
        int runs = 0, failedLookups = 0;
        foreach (string name in sections.Keys)
        {
            for (int i = 0; i < 80; i++)
            {
                byte[] copy = (byte[])sections[name].Clone();
                int edits = 1 + random.Next(8);
                for (int e = 0; e < edits; e++)
                {
                    int at = random.Next(copy.Length);
                    switch (random.Next(4))
                    {
                        case 0: copy[at] = (byte)random.Next(256); break;
                        case 1: copy[at] ^= (byte)(1 << random.Next(8)); break;
                        case 2: copy.AsSpan(at, Math.Min(copy.Length - at, 4)).Fill(0xff); break;   // huge lengths and counts
                        default: copy.AsSpan(at, Math.Min(copy.Length - at, 12)).Fill(0x80); break; // an endless LEB128
                    }
                }
                failedLookups += Exercise(new Dictionary<string, byte[]>(sections) { [name] = copy }, addresses, $"{name} damage #{i}");
                runs++;
            }
        }
        output.WriteLine($"{build}: {runs} damaged inputs, {failedLookups} lookups gave BadInputFormatException or warnings");
    });

    [Fact]
    public void MissingSections() => WithDeadline(() =>
    {
        var (sections, addresses) = Load("clang-O2");
        foreach (string name in SectionNames.Where(sections.ContainsKey))
            Exercise(sections.Where(p => p.Key != name).ToDictionary(p => p.Key, p => p.Value), addresses, $"without {name}");
    });

    [Theory]
    [InlineData("gcc-O2-gz-zlib")]
    [InlineData("gcc-O2-objcopy-zstd")]
    [InlineData("gcc-O2-objcopy-zlib-gnu")]
    public void DamagedCompressedFiles(string build) => WithDeadline(() =>
    {
        byte[] file = File.ReadAllBytes(DwarfFixtures.Get(build));
        ulong[] addresses;
        (ulong Offset, ulong Size)[] compressed;
        using (var elf = ElfFile.Open(DwarfFixtures.Get(build)))
        {
            addresses = DwarfSourceInfo.Load(elf)!.AllLineRowAddresses().Where((_, i) => i % 4 == 0).ToArray();
            compressed = elf.Sections.Where(ElfSectionDecompressor.IsCompressed).Select(s => (s.Offset, s.Size)).ToArray();
        }
        var random = new Random(7);
        for (int i = 0; i < 200; i++)
        {
            byte[] copy = (byte[])file.Clone();
            var (offset, size) = compressed[random.Next(compressed.Length)];
            for (int e = 0; e < 1 + random.Next(4); e++) copy[(int)offset + random.Next((int)size)] = (byte)random.Next(256);
            try
            {
                using var elf = ElfFile.FromBytes(copy, $"{build} damage #{i}");
                var info = DwarfSourceInfo.Load(elf);
                foreach (ulong a in addresses)
                {
                    try { info?.Lookup(a); }
                    catch (BadInputFormatException) { }
                }
            }
            catch (BadInputFormatException) { }
        }
    });
}
