namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>One attribute specification of an abbreviation: name, form, and DW_FORM_implicit_const's value.</summary>
internal readonly record struct DwarfAttributeSpec(ushort Name, ushort Form, long ImplicitConst);

/// <summary>One abbreviation declaration (DWARF 5 §7.5.3).</summary>
internal sealed class DwarfAbbreviation(ushort tag, bool hasChildren, DwarfAttributeSpec[] attributes)
{
    public ushort Tag { get; } = tag;
    public bool HasChildren { get; } = hasChildren;
    public DwarfAttributeSpec[] Attributes { get; } = attributes;
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
