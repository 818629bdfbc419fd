using System.Globalization;
using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace PSLinuxTrace.Engine.Tests.Dwarf;

/// <summary>
/// The call sites gdb's tail-call frames are built from (DW_TAG_call_site, and DWARF 4's
/// DW_TAG_GNU_call_site), against `llvm-dwarfdump --debug-info`: every call site it lists is found
/// at its return address, with its tail-call flag and the name of what it calls, and every tail call
/// is among those of the function it is in.
/// </summary>
public sealed partial class DwarfCallSiteTests(ITestOutputHelper output)
{
    public static TheoryData<string> Builds() => new() { "gcc-O2", "gcc-O2-dwarf4", "clang-O2", "inline_crash-O2", "inline_crash-O2-dwarf4" };

    private static string Build(string key) => key switch
    {
        "inline_crash-O2" => Fixtures.Build("inline_crash", "-O2 -pthread"),
        "inline_crash-O2-dwarf4" => Fixtures.Build("inline_crash", "-O2 -gdwarf-4 -pthread"),
        _ => DwarfFixtures.Get(key),
    };

    private sealed record Die(string Tag, Dictionary<string, string> Attributes);

    [Theory, MemberData(nameof(Builds))]
    public void CallSitesMatchLlvmDwarfdump(string build)
    {
        string file = Build(build);
        var dies = Parse(Tool.Check("llvm-dwarfdump-14", "--debug-info", file));
        using var elf = ElfFile.Open(file);
        var info = DwarfSourceInfo.Load(elf)!;
        int sites = 0, tails = 0;
        foreach (var die in dies.Values.Where(d => d.Tag is "DW_TAG_call_site" or "DW_TAG_GNU_call_site"))
        {
            string? pcText = die.Attributes.GetValueOrDefault(die.Tag == "DW_TAG_call_site" ? "DW_AT_call_return_pc" : "DW_AT_low_pc");
            if (pcText is null) continue;
            ulong pc = Hex(pcText);
            bool tail = die.Attributes.ContainsKey("DW_AT_call_tail_call") || die.Attributes.ContainsKey("DW_AT_GNU_tail_call");
            string? origin = die.Attributes.GetValueOrDefault("DW_AT_call_origin") ?? die.Attributes.GetValueOrDefault("DW_AT_abstract_origin");
            string? target = origin is null ? null : NameOf(dies, Hex(origin));
            var ours = info.CallSiteReturningTo(pc);
            Assert.True(ours is not null, $"{build}: no call site returning to 0x{pc:x}");
            Assert.Equal((pc, tail, target), (ours.ReturnAddress, ours.IsTailCall, ours.Target));
            sites++;
            if (!tail) continue;
            tails++;
            // Among the tail calls of the function that holds the jump.
            ulong entry = info.Lookup(pc - 1)[^1].EntryAddress!.Value;
            Assert.Contains(info.TailCallsFrom(entry), c => c.ReturnAddress == pc);
        }
        output.WriteLine($"{build}: {sites} call sites, {tails} tail calls");
        Assert.True(sites > 5, $"only {sites} call sites");
        // clang 14 marks no tail calls in these (gcc does, where dw_tail and ic_dispatch jump to their callee).
        if (!build.StartsWith("clang", StringComparison.Ordinal)) Assert.True(tails > 0, "no tail call was compared");
        Assert.Empty(info.Warnings);
    }

    /// <summary>The DIEs of llvm-dwarfdump's listing: "0xOFFSET: DW_TAG_x" lines, then "DW_AT_y (value)" lines.</summary>
    private static Dictionary<ulong, Die> Parse(string dump)
    {
        var dies = new Dictionary<ulong, Die>();
        Die? current = null;
        foreach (string line in dump.Split('\n'))
        {
            if (DieLine().Match(line) is { Success: true } d)
                dies[ulong.Parse(d.Groups[1].Value, NumberStyles.HexNumber)] = current = new Die(d.Groups[2].Value, new Dictionary<string, string>());
            else if (current is not null && AttributeLine().Match(line) is { Success: true } a)
                current.Attributes.TryAdd(a.Groups[1].Value, a.Groups[2].Value);
        }
        return dies;
    }

    /// <summary>A function DIE's linkage name, else its name, through DW_AT_abstract_origin and DW_AT_specification.</summary>
    private static string? NameOf(Dictionary<ulong, Die> dies, ulong offset)
    {
        string? name = null;
        for (int hops = 0; hops < 8 && dies.TryGetValue(offset, out var die); hops++)
        {
            if (die.Attributes.TryGetValue("DW_AT_linkage_name", out var linkage)) return Unquote(linkage);
            if (name is null && die.Attributes.TryGetValue("DW_AT_name", out var n)) name = Unquote(n);
            string? next = die.Attributes.GetValueOrDefault("DW_AT_abstract_origin") ?? die.Attributes.GetValueOrDefault("DW_AT_specification");
            if (next is null) break;
            offset = Hex(next);
        }
        return name;
    }

    private static string Unquote(string value) => value.Trim().Trim('"');

    private static ulong Hex(string value) => ulong.Parse(Regex.Match(value, "0x([0-9a-f]+)").Groups[1].Value, NumberStyles.HexNumber);

    [GeneratedRegex(@"^0x([0-9a-f]+):\s+(DW_TAG_\w+)")]
    private static partial Regex DieLine();
    [GeneratedRegex(@"^\s+(DW_AT_\w+)\s+\((.*)\)\s*$")]
    private static partial Regex AttributeLine();
}
