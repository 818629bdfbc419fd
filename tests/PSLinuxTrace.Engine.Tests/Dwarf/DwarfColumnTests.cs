using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;
using Xunit;
using Xunit.Abstractions;

namespace PSLinuxTrace.Engine.Tests.Dwarf;

/// <summary>
/// Columns, which addr2line does not print: against llvm-symbolizer (every build) and
/// eu-addr2line (the gcc builds it reads), frame by frame, wherever the tool chose the same
/// file and line as we did.
/// </summary>
public sealed class DwarfColumnTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Cases()
    {
        var d = new TheoryData<string, string>();
        foreach (string k in DwarfFixtures.Keys)
        {
            // llvm-symbolizer 14 reads no zstd section: that build is checked byte for byte in DwarfSectionTests.
            if (k != "gcc-O2-objcopy-zstd") d.Add(k, "llvm-symbolizer");
            // elfutils 0.188 reads no line of clang 14's DWARF and no zstd section.
            if (!k.StartsWith("clang", StringComparison.Ordinal) && k != "gcc-O2-objcopy-zstd") d.Add(k, "eu-addr2line");
        }
        return d;
    }

    [Theory, MemberData(nameof(Cases))]
    public void ColumnsMatch(string build, string tool)
    {
        string file = DwarfFixtures.Get(build);
        using var elf = ElfFile.Open(file);
        var info = DwarfSourceInfo.Load(elf)!;
        var addresses = DwarfLookupTests.Addresses(file, info);
        var reference = tool == "eu-addr2line" ? ReferenceSymbolizers.EuAddr2Line(file, addresses) : ReferenceSymbolizers.LlvmSymbolizer(file, addresses);
        int frames = 0, compared = 0, nonZero = 0;
        var differences = new List<string>();
        foreach (ulong a in addresses)
        {
            var ours = info.Lookup(a);
            frames += ours.Count;
            var theirs = reference[a];
            if (ours.Count != theirs.Count) continue;
            for (int i = 0; i < ours.Count; i++)
            {
                if (ours[i].File != theirs[i].File || ours[i].Line != theirs[i].Line) continue;
                compared++;
                if (ours[i].Column != 0) nonZero++;
                if (ours[i].Column != theirs[i].Column)
                    differences.Add($"0x{a:x} frame {i}: column {ours[i].Column}, {tool} {theirs[i].Column} ({ours[i]})");
            }
        }
        output.WriteLine($"{build} vs {tool}: {frames} frames, {compared} with the same file:line compared, {nonZero} with a column, {differences.Count} differences");
        Assert.True(differences.Count == 0, string.Join("\n", differences.Take(20)));
        Assert.True(compared > frames * 3 / 4, $"only {compared} of {frames} frames had the same file:line in {tool}");
        Assert.True(nonZero > compared / 2, "few frames had a column to compare");
    }
}
