using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;
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
