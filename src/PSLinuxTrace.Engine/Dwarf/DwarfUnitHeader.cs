namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>
/// A unit header of .debug_info (DWARF 2-5, §7.5.1): where the unit lies, its sizes and its
/// abbreviation table. <see cref="FirstDie"/> is the offset of the unit DIE.
/// </summary>
internal readonly record struct DwarfUnitHeader(
    ulong Offset, ulong End, int Version, byte UnitType, int OffsetSize, int AddressSize, ulong AbbrevOffset, ulong FirstDie)
{
    /// <summary>Parses the header at <paramref name="offset"/>; the unit must fit in the section (inflated only that far).</summary>
    public static DwarfUnitHeader Read(DwarfSections s, ulong offset)
    {
        ulong size = s.SizeOf(DwarfSectionKind.Info);
        var r = new DwarfReader(s.Prefix(DwarfSectionKind.Info, offset + 12), ".debug_info", offset);
        ulong length = r.InitialLength(out int offsetSize);
        if (length > size - r.Position) throw r.Bad($"the unit at 0x{offset:x} claims 0x{length:x} bytes, past the end of the section");
        ulong end = r.Position + length;
        r = new DwarfReader(s.Prefix(DwarfSectionKind.Info, end)[..(int)end], ".debug_info", r.Position);
        int version = r.U16();
        if (version is < 2 or > 5) throw r.Bad($"the unit at 0x{offset:x} has DWARF version {version} (2 to 5 are known)");
        byte unitType = DwUt.Compile;
        int addressSize;
        ulong abbrev;
        if (version >= 5)
        {
            unitType = r.U8();
            addressSize = r.U8();
            abbrev = r.Offset(offsetSize);
            switch (unitType)
            {
                case DwUt.Skeleton or DwUt.SplitCompile: r.Skip(8); break;                  // dwo_id
                case DwUt.Type or DwUt.SplitType: r.Skip(8); r.Offset(offsetSize); break;  // type_signature, type_offset
            }
        }
        else
        {
            abbrev = r.Offset(offsetSize);
            addressSize = r.U8();
        }
        if (addressSize is not (4 or 8)) throw r.Bad($"the unit at 0x{offset:x} has address size {addressSize}");
        if (r.Position > end) throw r.Bad($"the unit at 0x{offset:x} is shorter than its header");
        return new DwarfUnitHeader(offset, end, version, unitType, offsetSize, addressSize, abbrev, r.Position);
    }

    /// <summary>True when <paramref name="infoOffset"/> lies in this unit (after its header).</summary>
    public bool Contains(ulong infoOffset) => infoOffset >= FirstDie && infoOffset < End;
}
