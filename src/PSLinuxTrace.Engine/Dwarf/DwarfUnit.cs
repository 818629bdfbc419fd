namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>A half-open address range [Start, End) of a module's file addresses.</summary>
public readonly record struct AddressRange(ulong Start, ulong End)
{
    public bool Contains(ulong address) => address >= Start && address < End;
    public ulong Length => End - Start;
}

/// <summary>
/// One unit of .debug_info with what its unit DIE says (name, comp_dir, line table, base
/// address, the str_offsets/addr/rnglists bases), and the services every DIE of the unit needs:
/// strings, indexed addresses and range lists. Its function tree is built elsewhere, on demand.
/// </summary>
internal sealed class DwarfUnit
{
    private readonly DwarfSections _s;
    private DwarfAttributeValue? _lowPc, _highPc, _ranges;

    public DwarfUnitHeader Header { get; }
    public DwarfAbbreviations Abbreviations { get; }
    public ushort Tag { get; private set; }
    public string? Name { get; private set; }
    public string? CompDir { get; private set; }
    public ulong? StmtList { get; private set; }
    /// <summary>DW_AT_low_pc of the unit DIE: the base of its range lists (0 when absent).</summary>
    public ulong BaseAddress { get; private set; }
    public ulong StrOffsetsBase { get; private set; }
    public ulong AddrBase { get; private set; }
    public ulong RnglistsBase { get; private set; }
    /// <summary>A skeleton unit (DW_UT_skeleton, or DWARF 4 with DW_AT_GNU_dwo_name): its DIEs live in a .dwo we do not read.</summary>
    public bool IsSkeleton { get; private set; }

    private DwarfUnit(DwarfSections s, DwarfUnitHeader header, DwarfAbbreviations abbreviations)
    {
        _s = s;
        Header = header;
        Abbreviations = abbreviations;
    }

    /// <summary>Reads the unit DIE of <paramref name="header"/>'s unit.</summary>
    public static DwarfUnit Open(DwarfSections s, DwarfUnitHeader header, DwarfAbbreviations abbreviations)
    {
        var u = new DwarfUnit(s, header, abbreviations);
        u.ReadUnitDie();
        return u;
    }

    private void ReadUnitDie()
    {
        var info = _s.Prefix(DwarfSectionKind.Info, Header.End)[..(int)Header.End];
        var r = new DwarfReader(info, ".debug_info", Header.FirstDie);
        ulong code = r.Uleb();
        var abbrev = Abbreviations.Find(code) ?? throw r.Bad($"the unit at 0x{Header.Offset:x} starts with unknown abbreviation {code}");
        Tag = abbrev.Tag;
        DwarfAttributeValue? name = null, compDir = null;
        bool gotStrBase = false, gotRngBase = false;
        foreach (var spec in abbrev.Attributes)
        {
            var v = DwarfAttributeValue.Read(ref r, spec, Header);
            switch (spec.Name)
            {
                case DwAt.Name: name = v; break;
                case DwAt.CompDir: compDir = v; break;
                case DwAt.StmtList: StmtList = v.Value; break;
                case DwAt.LowPc: _lowPc = v; break;
                case DwAt.HighPc: _highPc = v; break;
                case DwAt.Ranges: _ranges = v; break;
                case DwAt.StrOffsetsBase: StrOffsetsBase = v.Value; gotStrBase = true; break;
                case DwAt.AddrBase or DwAt.GnuAddrBase: AddrBase = v.Value; break;
                case DwAt.RnglistsBase: RnglistsBase = v.Value; gotRngBase = true; break;
                case DwAt.GnuDwoName or DwAt.DwoName: IsSkeleton = true; break;
            }
        }
        IsSkeleton |= Header.UnitType == DwUt.Skeleton;
        // Without an explicit base, index 0 is the first entry after the section's own header
        // (DWARF 5 §7.26, §7.28): 8 bytes of header in 32-bit DWARF, 16 in 64-bit; 12/20 for rnglists.
        if (!gotStrBase) StrOffsetsBase = Header.OffsetSize == 8 ? 16u : 8u;
        if (!gotRngBase) RnglistsBase = Header.OffsetSize == 8 ? 20u : 12u;
        // Strings and addresses resolve only now that every base of the DIE is known.
        Name = name is { } n ? String(n) : null;
        CompDir = compDir is { } c ? String(c) : null;
        BaseAddress = _lowPc is { } lo ? Address(lo) : 0;
    }

    // ---------------------------------------------------------------- values

    /// <summary>The string a string-class value names, or null for other classes.</summary>
    public string? String(in DwarfAttributeValue v)
    {
        switch (v.Kind)
        {
            case DwarfValueKind.InlineString:
                var r = new DwarfReader(_s.Prefix(DwarfSectionKind.Info, Header.End)[..(int)Header.End], ".debug_info", v.Value);
                return r.CString();
            case DwarfValueKind.StrOffset: return DwarfReader.StringAt(_s[DwarfSectionKind.Str], v.Value, ".debug_str");
            case DwarfValueKind.LineStrOffset: return DwarfReader.StringAt(_s[DwarfSectionKind.LineStr], v.Value, ".debug_line_str");
            case DwarfValueKind.StrIndex: return DwarfReader.StringAt(_s[DwarfSectionKind.Str], StrOffset(v.Value), ".debug_str");
            default: return null;
        }
    }

    /// <summary>Entry <paramref name="index"/> of the unit's .debug_str_offsets table.</summary>
    public ulong StrOffset(ulong index)
    {
        var r = new DwarfReader(_s[DwarfSectionKind.StrOffsets], ".debug_str_offsets");
        r.Position = Entry(StrOffsetsBase, index, (ulong)Header.OffsetSize, r.Length, ".debug_str_offsets");
        return r.Offset(Header.OffsetSize);
    }

    /// <summary>The address an address-class value names (addrx via .debug_addr).</summary>
    public ulong Address(in DwarfAttributeValue v) => v.Kind switch
    {
        DwarfValueKind.Address => v.Value,
        DwarfValueKind.AddressIndex => IndexedAddress(v.Value),
        _ => throw new BadInputFormatException($"DWARF .debug_info: form 0x{v.Form:x} where an address was expected (unit at 0x{Header.Offset:x})."),
    };

    public ulong IndexedAddress(ulong index)
    {
        var r = new DwarfReader(_s[DwarfSectionKind.Addr], ".debug_addr");
        r.Position = Entry(AddrBase, index, (ulong)Header.AddressSize, r.Length, ".debug_addr");
        return r.UInt(Header.AddressSize);
    }

    private static ulong Entry(ulong baseOffset, ulong index, ulong size, ulong sectionLength, string section)
    {
        // index < length / size keeps index * size from overflowing; the reader checks the entry's own bytes.
        if (index >= sectionLength / size || baseOffset > sectionLength || index * size > sectionLength - baseOffset)
            throw new BadInputFormatException($"DWARF {section}: entry {index} from base 0x{baseOffset:x} lies outside the section (0x{sectionLength:x} bytes).");
        return baseOffset + index * size;
    }

    // ---------------------------------------------------------------- ranges

    /// <summary>The unit DIE's own address ranges (low/high pc or DW_AT_ranges); empty when it has none.</summary>
    public List<AddressRange> UnitRanges()
    {
        var list = new List<AddressRange>();
        AppendRanges(_lowPc, _highPc, _ranges, list, int.MaxValue);
        return list;
    }

    /// <summary>
    /// Adds the ranges a DIE's DW_AT_low_pc/DW_AT_high_pc or DW_AT_ranges describe (empty and
    /// inverted ones are dropped). At most <paramref name="budget"/> ranges; returns how many it added.
    /// </summary>
    public int AppendRanges(DwarfAttributeValue? lowPc, DwarfAttributeValue? highPc, DwarfAttributeValue? ranges, List<AddressRange> into, int budget)
    {
        int before = into.Count;
        if (ranges is { } rv)
        {
            if (Header.Version >= 5) ReadRangeList(rv, into, budget);
            else ReadDebugRanges(rv.Value, into, budget);
        }
        else if (lowPc is { IsAddress: true } lo && highPc is { } hi)
        {
            ulong start = Address(lo);
            ulong end = hi.IsConstant ? unchecked(start + hi.Value) : hi.IsAddress ? Address(hi) : start;
            if (end > start) into.Add(new AddressRange(start, end));
        }
        return into.Count - before;
    }

    /// <summary>DWARF 2-4 .debug_ranges: address pairs, a (max, base) pair sets the base, (0, 0) ends (DWARF 4 §2.17.3).</summary>
    private void ReadDebugRanges(ulong offset, List<AddressRange> into, int budget)
    {
        var r = new DwarfReader(_s[DwarfSectionKind.Ranges], ".debug_ranges", offset);
        int size = Header.AddressSize;
        ulong max = size == 8 ? ulong.MaxValue : uint.MaxValue, b = BaseAddress;
        while (true)
        {
            ulong start = r.UInt(size), end = r.UInt(size);
            if (start == 0 && end == 0) return;
            if (start == max) { b = end; continue; }
            Add(unchecked(b + start), unchecked(b + end), into, ref budget, ".debug_ranges");
        }
    }

    /// <summary>DWARF 5 .debug_rnglists entries (§2.17.3, §7.25), from an offset or a rnglistx index.</summary>
    private void ReadRangeList(in DwarfAttributeValue v, List<AddressRange> into, int budget)
    {
        var r = new DwarfReader(_s[DwarfSectionKind.Rnglists], ".debug_rnglists");
        if (v.Kind == DwarfValueKind.RangeListIndex)
        {
            // The offset table after the rnglists header holds offsets relative to rnglists_base.
            r.Position = Entry(RnglistsBase, v.Value, (ulong)Header.OffsetSize, r.Length, ".debug_rnglists");
            r.Position = unchecked(RnglistsBase + r.Offset(Header.OffsetSize));
        }
        else r.Position = v.Value;
        int size = Header.AddressSize;
        ulong b = BaseAddress;
        while (true)
        {
            byte kind = r.U8();
            switch (kind)
            {
                case DwRle.EndOfList: return;
                case DwRle.BaseAddressx: b = IndexedAddress(r.Uleb()); break;
                case DwRle.StartxEndx: { ulong s = IndexedAddress(r.Uleb()), e = IndexedAddress(r.Uleb()); Add(s, e, into, ref budget, ".debug_rnglists"); break; }
                case DwRle.StartxLength: { ulong s = IndexedAddress(r.Uleb()), l = r.Uleb(); Add(s, unchecked(s + l), into, ref budget, ".debug_rnglists"); break; }
                case DwRle.OffsetPair: { ulong s = r.Uleb(), e = r.Uleb(); Add(unchecked(b + s), unchecked(b + e), into, ref budget, ".debug_rnglists"); break; }
                case DwRle.BaseAddress: b = r.UInt(size); break;
                case DwRle.StartEnd: { ulong s = r.UInt(size), e = r.UInt(size); Add(s, e, into, ref budget, ".debug_rnglists"); break; }
                case DwRle.StartLength: { ulong s = r.UInt(size), l = r.Uleb(); Add(s, unchecked(s + l), into, ref budget, ".debug_rnglists"); break; }
                default: throw r.Bad($"unknown range list entry kind {kind}");
            }
        }
    }

    private static void Add(ulong start, ulong end, List<AddressRange> into, ref int budget, string section)
    {
        if (end <= start) return;
        if (--budget < 0) throw new BadInputFormatException($"DWARF {section}: more ranges than the unit can plausibly have.");
        into.Add(new AddressRange(start, end));
    }

    public override string ToString() => $"unit 0x{Header.Offset:x} {Name}";
}
