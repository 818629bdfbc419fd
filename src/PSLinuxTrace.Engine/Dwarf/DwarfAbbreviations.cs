using System.Runtime.CompilerServices;
namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>One attribute specification of an abbreviation: name, form, and DW_FORM_implicit_const's value.</summary>
internal readonly record struct DwarfAttributeSpec(ushort Name, ushort Form, long ImplicitConst);

/// <summary>
/// One abbreviation declaration (DWARF 5 §7.5.3), with what skipping its DIEs takes: when every
/// form has a fixed size, a DIE is skipped in one step (most DIEs of a unit are types, members
/// and parameters that a code-address lookup never reads).
/// </summary>
internal sealed class DwarfAbbreviation
{
    private readonly int _constantBytes, _addresses, _offsets, _refAddrs;

    public DwarfAbbreviation(ushort tag, bool hasChildren, DwarfAttributeSpec[] attributes)
    {
        Tag = tag;
        HasChildren = hasChildren;
        Attributes = attributes;
        SiblingIndex = Array.FindIndex(attributes, a => a.Name == DwAt.Sibling);
        foreach (var a in attributes)
        {
            switch (a.Form)
            {
                case DwForm.FlagPresent or DwForm.ImplicitConst: break;
                case DwForm.Data1 or DwForm.Ref1 or DwForm.Flag or DwForm.Strx1 or DwForm.Addrx1: _constantBytes += 1; break;
                case DwForm.Data2 or DwForm.Ref2 or DwForm.Strx2 or DwForm.Addrx2: _constantBytes += 2; break;
                case DwForm.Strx3 or DwForm.Addrx3: _constantBytes += 3; break;
                case DwForm.Data4 or DwForm.Ref4 or DwForm.RefSup4 or DwForm.Strx4 or DwForm.Addrx4: _constantBytes += 4; break;
                case DwForm.Data8 or DwForm.Ref8 or DwForm.RefSig8 or DwForm.RefSup8: _constantBytes += 8; break;
                case DwForm.Data16: _constantBytes += 16; break;
                case DwForm.Addr: _addresses++; break;
                case DwForm.Strp or DwForm.LineStrp or DwForm.SecOffset or DwForm.StrpSup or DwForm.GnuRefAlt or DwForm.GnuStrpAlt: _offsets++; break;
                case DwForm.RefAddr: _refAddrs++; break;
                default: HasVariableSize = true; break;
            }
        }
    }

    public ushort Tag { get; }
    public bool HasChildren { get; }
    public DwarfAttributeSpec[] Attributes { get; }
    /// <summary>The index of DW_AT_sibling among <see cref="Attributes"/>, or -1.</summary>
    public int SiblingIndex { get; }
    /// <summary>True when some form's size is in the data (strings, blocks, LEB128s).</summary>
    public bool HasVariableSize { get; }

    /// <summary>The size of every DIE of this abbreviation in <paramref name="unit"/> (after its code), when <see cref="HasVariableSize"/> is false.</summary>
    public int FixedSize(in DwarfUnitHeader unit) =>
        _constantBytes + _addresses * unit.AddressSize + _offsets * unit.OffsetSize + _refAddrs * (unit.Version <= 2 ? unit.AddressSize : unit.OffsetSize);
}

/// <summary>
/// The abbreviation table at one offset of .debug_abbrev. Codes are looked up in an array when
/// they are dense (gcc and clang number them 1, 2, 3, ...), in a dictionary otherwise.
/// </summary>
internal sealed class DwarfAbbreviations
{
    private readonly DwarfAbbreviation?[] _dense;
    private readonly Dictionary<ulong, DwarfAbbreviation>? _sparse;

    private DwarfAbbreviations(DwarfAbbreviation?[] dense, Dictionary<ulong, DwarfAbbreviation>? sparse)
    {
        _dense = dense;
        _sparse = sparse;
    }

    public DwarfAbbreviation? Find(ulong code)
    {
        if (code < (ulong)_dense.Length) return _dense[code];
        return _sparse is not null && _sparse.TryGetValue(code, out var a) ? a : null;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static DwarfAbbreviations Parse(ReadOnlySpan<byte> section, ulong offset)
    {
        var r = new DwarfReader(section, ".debug_abbrev", offset);
        var all = new List<(ulong Code, DwarfAbbreviation Abbrev)>();
        var specs = new List<DwarfAttributeSpec>();
        ulong maxCode = 0;
        while (true)
        {
            ulong code = r.Uleb();
            if (code == 0) break;
            ulong tag = r.Uleb();
            bool children = r.U8() != 0;
            specs.Clear();
            while (true)
            {
                ulong name = r.Uleb(), form = r.Uleb();
                if (name == 0 && form == 0) break;
                long implicitConst = form == DwForm.ImplicitConst ? r.Sleb() : 0;
                // Values past 16 bits are no name or form we know; keep them as "unknown" (0xffff),
                // which the attribute reader rejects only if the form must be skipped.
                specs.Add(new DwarfAttributeSpec(name > 0xffff ? (ushort)0xffff : (ushort)name, form > 0xffff ? (ushort)0xffff : (ushort)form, implicitConst));
            }
            all.Add((code, new DwarfAbbreviation(tag > 0xffff ? (ushort)0xffff : (ushort)tag, children, specs.ToArray())));
            maxCode = Math.Max(maxCode, code);
        }
        // Each entry took at least 4 bytes of the section, so a dense array of maxCode + 1 slots is
        // only allocated when that stays proportional to the table.
        bool dense = maxCode < (ulong)all.Count * 2 + 16;
        var array = new DwarfAbbreviation?[dense ? (int)maxCode + 1 : 0];
        Dictionary<ulong, DwarfAbbreviation>? sparse = dense ? null : new();
        foreach (var (code, a) in all)
        {
            if (dense) array[code] ??= a;
            else sparse!.TryAdd(code, a);
        }
        return new DwarfAbbreviations(array, sparse);
    }
}
