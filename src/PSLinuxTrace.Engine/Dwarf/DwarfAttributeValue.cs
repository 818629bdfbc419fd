using System.Runtime.CompilerServices;
namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>What an attribute value is, once its form is decoded (DWARF 5 §7.5.5 attribute classes).</summary>
internal enum DwarfValueKind : byte
{
    /// <summary>data1..8, udata, sdata, implicit_const, flag: <see cref="DwarfAttributeValue.Value"/>.</summary>
    Constant,
    /// <summary>DW_FORM_addr: the address itself.</summary>
    Address,
    /// <summary>addrx*, GNU_addr_index: an index into .debug_addr from the unit's addr_base.</summary>
    AddressIndex,
    /// <summary>A .debug_info offset (unit-relative refs already made absolute).</summary>
    Reference,
    /// <summary>sec_offset: an offset into another section (line table, range list, ...).</summary>
    SectionOffset,
    /// <summary>rnglistx: an index into the unit's .debug_rnglists offset table.</summary>
    RangeListIndex,
    /// <summary>DW_FORM_string: the position of the string in .debug_info.</summary>
    InlineString,
    /// <summary>strp: a .debug_str offset.</summary>
    StrOffset,
    /// <summary>line_strp: a .debug_line_str offset.</summary>
    LineStrOffset,
    /// <summary>strx*, GNU_str_index: an index into .debug_str_offsets from the unit's str_offsets_base.</summary>
    StrIndex,
    /// <summary>Blocks, exprlocs, data16, and references into files we do not read (ref_sig8, ref_sup, GNU alt).</summary>
    Other,
}

/// <summary>One decoded attribute value; strings and indexed values are resolved through the unit.</summary>
internal readonly record struct DwarfAttributeValue(DwarfValueKind Kind, ushort Form, ulong Value)
{
    /// <summary>True for the constant class; high_pc is then an offset from low_pc (DWARF 4 §2.17.2).</summary>
    public bool IsConstant => Kind == DwarfValueKind.Constant;
    public bool IsString => Kind is DwarfValueKind.InlineString or DwarfValueKind.StrOffset or DwarfValueKind.LineStrOffset or DwarfValueKind.StrIndex;
    public bool IsAddress => Kind is DwarfValueKind.Address or DwarfValueKind.AddressIndex;

    /// <summary>
    /// Reads one value of <paramref name="form"/> at the reader's position (and advances past it).
    /// Forms this reader does not know end the unit: their size is unknown, so nothing after them can be read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static DwarfAttributeValue Read(ref DwarfReader r, DwarfAttributeSpec spec, in DwarfUnitHeader unit)
    {
        ushort form = spec.Form;
        // DW_FORM_indirect names the real form in the data; bound the chain so it cannot loop.
        for (int hops = 0; form == DwForm.Indirect; hops++)
        {
            if (hops > 4) throw r.Bad("DW_FORM_indirect chain is too long");
            ulong f = r.Uleb();
            form = f > 0xffff ? (ushort)0xffff : (ushort)f;
        }
        switch (form)
        {
            case DwForm.Addr: return new(DwarfValueKind.Address, form, r.UInt(unit.AddressSize));
            case DwForm.Data1 or DwForm.Ref1 or DwForm.Flag or DwForm.Strx1 or DwForm.Addrx1:
                return Classify(form, r.U8(), unit);
            case DwForm.Data2 or DwForm.Ref2 or DwForm.Strx2 or DwForm.Addrx2:
                return Classify(form, r.U16(), unit);
            case DwForm.Strx3 or DwForm.Addrx3:
                return Classify(form, r.U24(), unit);
            case DwForm.Data4 or DwForm.Ref4 or DwForm.RefSup4 or DwForm.Strx4 or DwForm.Addrx4:
                return Classify(form, r.U32(), unit);
            case DwForm.Data8 or DwForm.Ref8 or DwForm.RefSig8 or DwForm.RefSup8:
                return Classify(form, r.U64(), unit);
            case DwForm.Data16: r.Skip(16); return new(DwarfValueKind.Other, form, 0);
            case DwForm.Sdata: return new(DwarfValueKind.Constant, form, (ulong)r.Sleb());
            case DwForm.Udata or DwForm.RefUdata or DwForm.Strx or DwForm.Addrx or DwForm.Loclistx or DwForm.Rnglistx
                or DwForm.GnuAddrIndex or DwForm.GnuStrIndex:
                return Classify(form, r.Uleb(), unit);
            case DwForm.String:
            {
                ulong at = r.Position;
                r.CString();
                return new(DwarfValueKind.InlineString, form, at);
            }
            case DwForm.Strp: return new(DwarfValueKind.StrOffset, form, r.Offset(unit.OffsetSize));
            case DwForm.LineStrp: return new(DwarfValueKind.LineStrOffset, form, r.Offset(unit.OffsetSize));
            case DwForm.RefAddr:
                // DWARF 2 wrote ref_addr in address size; DWARF 3 and later in offset size.
                return new(DwarfValueKind.Reference, form, unit.Version <= 2 ? r.UInt(unit.AddressSize) : r.Offset(unit.OffsetSize));
            case DwForm.SecOffset: return new(DwarfValueKind.SectionOffset, form, r.Offset(unit.OffsetSize));
            case DwForm.StrpSup or DwForm.GnuRefAlt or DwForm.GnuStrpAlt:
                r.Offset(unit.OffsetSize);
                return new(DwarfValueKind.Other, form, 0);
            case DwForm.Block1: r.Skip(r.U8()); return new(DwarfValueKind.Other, form, 0);
            case DwForm.Block2: r.Skip(r.U16()); return new(DwarfValueKind.Other, form, 0);
            case DwForm.Block4: r.Skip(r.U32()); return new(DwarfValueKind.Other, form, 0);
            case DwForm.Block or DwForm.Exprloc: r.Skip(r.Uleb()); return new(DwarfValueKind.Other, form, 0);
            case DwForm.FlagPresent: return new(DwarfValueKind.Constant, form, 1);
            case DwForm.ImplicitConst: return new(DwarfValueKind.Constant, form, (ulong)spec.ImplicitConst);
            default: throw r.Bad($"unknown attribute form 0x{form:x} in the unit at 0x{unit.Offset:x}");
        }
    }

    private static DwarfAttributeValue Classify(ushort form, ulong v, in DwarfUnitHeader unit) => form switch
    {
        DwForm.Ref1 or DwForm.Ref2 or DwForm.Ref4 or DwForm.Ref8 or DwForm.RefUdata =>
            new(DwarfValueKind.Reference, form, unchecked(unit.Offset + v)),
        DwForm.Strx or DwForm.Strx1 or DwForm.Strx2 or DwForm.Strx3 or DwForm.Strx4 or DwForm.GnuStrIndex =>
            new(DwarfValueKind.StrIndex, form, v),
        DwForm.Addrx or DwForm.Addrx1 or DwForm.Addrx2 or DwForm.Addrx3 or DwForm.Addrx4 or DwForm.GnuAddrIndex =>
            new(DwarfValueKind.AddressIndex, form, v),
        DwForm.Rnglistx => new(DwarfValueKind.RangeListIndex, form, v),
        DwForm.RefSig8 or DwForm.RefSup4 or DwForm.RefSup8 or DwForm.Loclistx => new(DwarfValueKind.Other, form, v),
        _ => new(DwarfValueKind.Constant, form, v),
    };
}
