using PSLinuxTrace.Engine;
using PSLinuxTrace.Engine.Dwarf;

namespace PSLinuxTrace.Fuzz;

/// <summary>
/// The DWARF source readers, fed a <see cref="SectionBundle"/>. dwarf-info takes every section from
/// the input; dwarf-line replaces .debug_info and .debug_abbrev by one fixed unit (stmt_list 0,
/// covering all addresses), so that every mutation lands in the line-number program.
/// </summary>
internal static class DwarfTargets
{
    private const int MaxLookups = 48;

    // DW_TAG_compile_unit, no children: DW_AT_stmt_list/sec_offset, low_pc/addr, high_pc/data8, comp_dir/string, name/string.
    private static readonly byte[] FixedAbbrev = [1, 0x11, 0, 0x10, 0x17, 0x11, 0x01, 0x12, 0x07, 0x1b, 0x08, 0x03, 0x08, 0, 0, 0];

    private static readonly byte[] FixedInfo = BuildFixedUnit();

    private static byte[] BuildFixedUnit()
    {
        var die = new List<byte> { 4, 0, 0, 0, 0, 0, 8, 1 };   // version 4, abbrev_offset 0, address_size 8, abbrev 1
        die.AddRange(BitConverter.GetBytes(0u));                // DW_AT_stmt_list: the table at 0
        die.AddRange(BitConverter.GetBytes(0UL));               // DW_AT_low_pc
        die.AddRange(BitConverter.GetBytes(0x7fff_ffff_ffffUL)); // DW_AT_high_pc: a length, all user space
        die.AddRange("/fuzz\0"u8.ToArray());
        die.AddRange("fuzz.c\0"u8.ToArray());
        return [.. BitConverter.GetBytes((uint)die.Count), .. die];
    }

    public static void RunLine(byte[] input)
    {
        var sections = SectionBundle.Decode(input);
        sections[".debug_info"] = FixedInfo;
        sections[".debug_abbrev"] = FixedAbbrev;
        sections.Remove(".debug_aranges");
        Exercise(sections);
    }

    public static void RunInfo(byte[] input) => Exercise(SectionBundle.Decode(input));

    private static void Exercise(Dictionary<string, byte[]> sections)
    {
        var info = DwarfSourceInfo.Load(DwarfSections.FromBytes(sections, "fuzz.dwarf"));
        if (info is null) return;
        List<ulong> addresses;
        try
        {
            addresses = info.AllLineRowAddresses();
        }
        catch (BadInputFormatException)
        {
            addresses = [];
        }
        addresses.AddRange([0x1000, 0x1130, 0x401000]);
        foreach (ulong address in addresses.Distinct().Take(MaxLookups))
        {
            foreach (var frame in Lookup(info, address))
                if (frame.EntryAddress is { } entry) info.TailCallsFrom(entry);
            info.CallSiteReturningTo(address + 1);
        }
        _ = info.Warnings.Count;
    }

    /// <summary>A lookup that damage left nothing to answer with is a fine answer; the next address is tried.</summary>
    private static IReadOnlyList<SourceFrame> Lookup(DwarfSourceInfo info, ulong address)
    {
        try
        {
            return info.Lookup(address);
        }
        catch (BadInputFormatException)
        {
            return [];
        }
    }
}
