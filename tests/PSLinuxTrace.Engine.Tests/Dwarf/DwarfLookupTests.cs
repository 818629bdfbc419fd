using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace PSLinuxTrace.Engine.Tests.Dwarf;

/// <summary>
/// DwarfSourceInfo.Lookup against `addr2line -f -i` on every line-table row and every instruction
/// of each fixture: the same frames in the same order, with the same function names, file paths
/// and line numbers. Where binutils 2.40 is wrong (it misses clang's inlined calls, and takes a
/// DWARF 5 program's initial file register for the primary file), llvm-symbolizer and
/// eu-addr2line must both agree with us instead; the test prints how many such addresses there were.
/// </summary>
public sealed class DwarfLookupTests(ITestOutputHelper output)
{
    public static TheoryData<string> Builds()
    {
        var d = new TheoryData<string>();
        foreach (string k in DwarfFixtures.Keys) d.Add(k);
        return d;
    }

    /// <summary>The addresses every comparison uses: each row's address and each instruction's.</summary>
    internal static List<ulong> Addresses(string file, DwarfSourceInfo info) =>
        info.AllLineRowAddresses().Concat(ReferenceSymbolizers.InstructionAddresses(file)).Distinct().Order().ToList();

    [Theory, MemberData(nameof(Builds))]
    public void FramesMatchAddr2Line(string build)
    {
        string file = DwarfFixtures.Get(build);
        using var elf = ElfFile.Open(file);
        var info = DwarfSourceInfo.Load(elf);
        Assert.NotNull(info);
        var addresses = Addresses(file, info);
        var check = CrossCheck.Run(info, file, DwarfFixtures.ReferenceFor(build), addresses);
        output.WriteLine($"{build}: {check}");
        foreach (string e in check.Examples) output.WriteLine("  e.g. " + e);
        Assert.True(check.Differences.Count == 0, string.Join("\n", check.Differences.Take(20)));
        Assert.True(check.WithFrames > 20, $"only {check.WithFrames} of {addresses.Count} addresses resolved");
        if (build != "gcc-O0") Assert.True(check.Inlined > 0, "no address of inlined code was compared");
        // Never more than a minority explained by the other two tools: addr2line stays the reference.
        Assert.True(check.Disputed < check.WithFrames / 2, $"{check.Disputed} of {check.WithFrames} addresses differ from addr2line");
        Assert.Empty(info.Warnings);
    }

    /// <summary>Why the frames differ, or null. Addresses without DWARF: the tool prints a symbol, but no line.</summary>
    internal static string? Compare(IReadOnlyList<SourceFrame> ours, List<ReferenceFrame> theirs, bool names = true)
    {
        if (ours.Count == 0)
            return theirs.Count == 1 && theirs[0].Line == 0 ? null : "we found nothing";
        if (ours.Count != theirs.Count) return $"{ours.Count} frames, the tool {theirs.Count}";
        for (int i = 0; i < ours.Count; i++)
        {
            var (o, t) = (ours[i], theirs[i]);
            // addr2line names a frame without a function DIE from .symtab; we leave that to the symbolizer.
            if (names && o.Function is not null && o.Function != t.Function) return $"frame {i}: function {o.Function} vs {t.Function}";
            if (o.File != t.File) return $"frame {i}: file {o.File} vs {t.File}";
            if (o.Line != t.Line) return $"frame {i}: line {o.Line} vs {t.Line}";
            if (o.IsInlined != (i < ours.Count - 1)) return $"frame {i}: IsInlined {o.IsInlined}";
        }
        return null;
    }
}

/// <summary>EntryAddress of the out-of-line frame: the value of the function's own .symtab symbol (readelf -s), so "function+offset" matches it.</summary>
public sealed class DwarfEntryAddressTests
{
    public static TheoryData<string> Builds() => DwarfLookupTests.Builds();

    [Theory, MemberData(nameof(Builds))]
    public void EntryIsTheSymbolValue(string build)
    {
        string file = DwarfFixtures.Get(build);
        var symbols = Tool.Check("readelf", "-sW", file).Split('\n')
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 8 && f[3] == "FUNC" && f[6] != "UND")
            .Select(f => (Name: f[7].Split('@')[0], Value: Convert.ToUInt64(f[1], 16), Size: ulong.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture)))
            .ToList();
        using var elf = ElfFile.Open(file);
        var info = DwarfSourceInfo.Load(elf)!;
        int compared = 0;
        foreach (ulong a in DwarfLookupTests.Addresses(file, info))
        {
            var frames = info.Lookup(a);
            if (frames.Count == 0 || frames[^1].Function is not { } name) continue;
            // The symbol that holds the address, when it names the same function (not main.cold for main).
            var holder = symbols.Where(s => a >= s.Value && a < s.Value + Math.Max(1, s.Size)).ToList();
            if (holder.Count == 0 || holder[0].Name != name) continue;
            Assert.True(holder[0].Value == frames[^1].EntryAddress, $"0x{a:x} in {name}: entry 0x{frames[^1].EntryAddress:x}, symbol 0x{holder[0].Value:x}");
            compared++;
        }
        Assert.True(compared > 10, $"{compared} addresses compared");
    }
}

/// <summary>
/// Split DWARF (gcc -gsplit-dwarf): the binary keeps a skeleton unit and the line table, the
/// functions live in a .dwo file this reader does not open. Lookups give the innermost
/// location only, and it is the one llvm-symbolizer (which reads the .dwo) gives first.
/// addr2line 2.40 reads no line of it at all.
/// </summary>
public sealed class DwarfSplitDwarfTests
{
    [Fact]
    public void SkeletonUnitsGiveTheInnermostLocation()
    {
        string file = DwarfFixtures.SplitDwarf();
        using var elf = ElfFile.Open(file);
        var info = DwarfSourceInfo.Load(elf)!;
        var addresses = DwarfLookupTests.Addresses(file, info);
        var llvm = ReferenceSymbolizers.LlvmSymbolizer(file, addresses);
        int compared = 0, inlinedThere = 0;
        foreach (ulong a in addresses)
        {
            var ours = info.Lookup(a);
            if (ours.Count == 0)
            {
                Assert.True(llvm[a].All(f => f.Line == 0), $"0x{a:x}: llvm-symbolizer has {string.Join(" | ", llvm[a])}");
                continue;
            }
            Assert.Single(ours);
            Assert.Null(ours[0].Function);
            var first = llvm[a][0];
            Assert.True((first.File, first.Line, first.Column) == (ours[0].File, ours[0].Line, ours[0].Column), $"0x{a:x}: ours {ours[0]}, llvm-symbolizer {first}");
            compared++;
            if (llvm[a].Count > 1) inlinedThere++;
        }
        Assert.True(compared > 50 && inlinedThere > 0, $"{compared} compared, {inlinedThere} in inlined code");
        Assert.Empty(info.Warnings);
    }
}
