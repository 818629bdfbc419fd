using PSLinuxTrace.Engine.Dwarf;

namespace PSLinuxTrace.Engine.Tests.Dwarf;

/// <summary>
/// Our frames for many addresses against addr2line's. binutils 2.40 is wrong in two ways we meet:
/// it misreads DW_FORM_rnglistx (clang 14's inlined calls vanish), and it shows rows of DWARF 5
/// file 1 as the unit's primary file (file 0) when they differ (gcc numbers the file of the
/// unit's first code 1: a header's, or glibc's strfrom-skeleton.c in strfromd.c).
/// Where addr2line differs, eu-addr2line must agree with us on everything (when it knows the
/// address at all) and llvm-symbolizer on every file:line (it names functions from .symtab).
/// </summary>
internal sealed record CrossCheck(int Addresses, int WithFrames, int Inlined, int Disputed, List<string> Differences, List<string> Examples, string DisputeKinds)
{
    public static CrossCheck Run(DwarfSourceInfo info, string file, string referenceFile, IReadOnlyCollection<ulong> addresses)
    {
        var ours = addresses.Distinct().ToDictionary(a => a, info.Lookup);
        var addr2line = ReferenceSymbolizers.Addr2Line(referenceFile, ours.Keys);
        var disputed = ours.Keys.Where(a => DwarfLookupTests.Compare(ours[a], addr2line[a]) is not null).ToList();
        var llvm = ReferenceSymbolizers.LlvmSymbolizer(file, disputed);
        var eu = ReferenceSymbolizers.EuAddr2Line(file, disputed);
        var differences = new List<string>();
        foreach (ulong a in disputed)
        {
            bool euKnows = eu[a].Any(f => f.Line > 0);
            if (DwarfLookupTests.Compare(ours[a], llvm[a], names: false) is null && (!euKnows || DwarfLookupTests.Compare(ours[a], eu[a]) is null)) continue;
            differences.Add($"0x{a:x}: {DwarfLookupTests.Compare(ours[a], addr2line[a])}\n  ours:      {string.Join(" | ", ours[a])}\n" +
                $"  addr2line: {string.Join(" | ", addr2line[a])}\n  llvm:      {string.Join(" | ", llvm[a])}\n  eu:        {string.Join(" | ", eu[a])}");
        }
        var examples = disputed.Take(3).Select(a => $"0x{a:x}: ours {string.Join(" | ", ours[a])}; addr2line {string.Join(" | ", addr2line[a])}").ToList();
        // What addr2line got wrong, by kind ("frame 0: file", "2 frames, the tool 1"), for the test output.
        string kinds = string.Join(", ", disputed.GroupBy(a => System.Text.RegularExpressions.Regex.Replace(DwarfLookupTests.Compare(ours[a], addr2line[a])!, @"(: \w+) .*", "$1"))
            .OrderByDescending(g => g.Count()).Select(g => $"{g.Count()}× {g.Key}"));
        return new CrossCheck(ours.Count, ours.Values.Count(f => f.Count > 0), ours.Values.Count(f => f.Count > 1), disputed.Count, differences, examples, kinds);
    }

    public override string ToString() =>
        $"{Addresses} addresses, {WithFrames} with DWARF frames, {Inlined} in inlined code; {Addresses - Disputed} as addr2line, " +
        $"{Disputed - Differences.Count} as eu-addr2line and llvm-symbolizer where addr2line differs ({DisputeKinds}), {Differences.Count} differences";
}
