using System.Runtime.CompilerServices;
namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>
/// The code-bearing scopes of one unit: every DW_TAG_subprogram, DW_TAG_entry_point and
/// DW_TAG_inlined_subroutine that has addresses, with its nearest enclosing such scope (the
/// inliner for an inlined call), its call site, and an address index over all their ranges.
/// Built in one pass over the unit's DIEs, the first time an address falls in the unit.
/// </summary>
internal sealed class DwarfScopeTree
{
    internal readonly record struct Scope(ulong Die, ushort Tag, int Parent, ulong CallFile, uint CallLine, uint CallColumn, ulong Entry)
    {
        public bool IsInlined => Tag == DwTag.InlinedSubroutine;
    }

    private readonly record struct IndexEntry(ulong Start, ulong End, int Scope);

    private readonly Scope[] _scopes;
    private readonly IndexEntry[] _index;
    private readonly ulong[] _maxEnd; // _maxEnd[i]: the largest End among _index[0..i]

    private DwarfScopeTree(Scope[] scopes, IndexEntry[] index)
    {
        _scopes = scopes;
        _index = index;
        _maxEnd = new ulong[index.Length];
        ulong max = 0;
        for (int i = 0; i < index.Length; i++) _maxEnd[i] = max = Math.Max(max, index[i].End);
    }

    public int Count => _scopes.Length;
    public Scope this[int i] => _scopes[i];

    /// <summary>
    /// The innermost scope holding <paramref name="address"/>, or -1. As bfd's
    /// lookup_address_in_function_table: the scope with the shortest range that holds the address,
    /// the later DIE on a tie (an inlined call that fills its caller's whole range).
    /// </summary>
    public int Innermost(ulong address)
    {
        int lo = 0, hi = _index.Length - 1, last = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_index[mid].Start <= address) { last = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        int best = -1;
        ulong bestLength = ulong.MaxValue;
        for (int j = last; j >= 0 && _maxEnd[j] > address; j--)
        {
            var e = _index[j];
            if (e.End <= address) continue;
            ulong length = e.End - e.Start;
            if (length < bestLength || (length == bestLength && e.Scope > best))
            {
                best = e.Scope;
                bestLength = length;
            }
        }
        return best;
    }

    /// <summary>Walks the unit's DIEs once, keeping the scopes that have addresses.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static DwarfScopeTree Build(DwarfSections s, DwarfUnit unit)
    {
        var header = unit.Header;
        var info = s.Prefix(DwarfSectionKind.Info, header.End)[..(int)header.End];
        var r = new DwarfReader(info, ".debug_info", header.FirstDie);
        var scopes = new List<Scope>();
        var ranges = new List<AddressRange>();
        var index = new List<IndexEntry>();
        var enclosing = new Stack<int>();
        int current = -1;
        // A range list can be shared by many DIEs; bound the total so damage cannot multiply it.
        int budget = (int)Math.Min(int.MaxValue, 4 * (header.End - header.Offset) + 65536);
        while (r.Position < header.End)
        {
            ulong die = r.Position;
            ulong code = r.Uleb();
            if (code == 0)
            {
                // The end of a sibling chain; padding after the unit DIE's children is allowed.
                if (enclosing.Count > 0) current = enclosing.Pop();
                continue;
            }
            var abbrev = unit.Abbreviations.Find(code) ?? throw r.Bad($"DIE at 0x{die:x} uses unknown abbreviation {code}");
            int me = -1;
            if (abbrev.Tag is DwTag.Subprogram or DwTag.InlinedSubroutine or DwTag.EntryPoint)
                me = ReadScope(ref r, unit, abbrev, die, current, scopes, ranges, index, ref budget);
            else if (abbrev.HasChildren && abbrev.SiblingIndex >= 0 && HoldsNoCode(abbrev.Tag))
            {
                // A type's members hold no code: jump to its sibling (forward only, within the unit).
                if (SkipToSibling(ref r, abbrev, header)) continue;
            }
            else if (!abbrev.HasVariableSize) r.Skip((ulong)abbrev.FixedSize(header));
            else SkipAttributes(ref r, abbrev, header);
            if (abbrev.HasChildren)
            {
                enclosing.Push(current);
                if (me >= 0) current = me;
            }
        }
        index.Sort((a, b) => a.Start != b.Start ? a.Start.CompareTo(b.Start) : a.Scope.CompareTo(b.Scope));
        return new DwarfScopeTree(scopes.ToArray(), index.ToArray());
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SkipAttributes(ref DwarfReader r, DwarfAbbreviation abbrev, in DwarfUnitHeader header)
    {
        foreach (var spec in abbrev.Attributes) DwarfAttributeValue.Read(ref r, spec, header);
    }

    /// <summary>Tags whose children are members, enumerators, subranges or parameters, never code (DWARF 5 §5).</summary>
    private static bool HoldsNoCode(ushort tag) => tag is 0x01 or 0x04 or 0x13 or 0x15 or 0x17 or 0x02 or 0x48 or 0x4109;
    // array_type, enumeration_type, structure_type, subroutine_type, union_type, class_type, call_site, GNU_call_site.
    // (C++ member functions with code are separate DIEs at namespace level, tied back by DW_AT_specification.)

    /// <summary>Reads the DIE's attributes and moves past its children to its sibling; false (and no move) when the sibling is not ahead.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool SkipToSibling(ref DwarfReader r, DwarfAbbreviation abbrev, in DwarfUnitHeader header)
    {
        ulong sibling = 0;
        for (int i = 0; i < abbrev.Attributes.Length; i++)
        {
            var v = DwarfAttributeValue.Read(ref r, abbrev.Attributes[i], header);
            if (i == abbrev.SiblingIndex && v.Kind == DwarfValueKind.Reference) sibling = v.Value;
        }
        if (sibling <= r.Position || sibling >= header.End) return false;
        r.Position = sibling;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ReadScope(ref DwarfReader r, DwarfUnit unit, DwarfAbbreviation abbrev, ulong die, int parent,
        List<Scope> scopes, List<AddressRange> ranges, List<IndexEntry> index, ref int budget)
    {
        DwarfAttributeValue? low = null, high = null, rangesAttr = null, entryPc = null;
        ulong callFile = 0, callLine = 0, callColumn = 0;
        foreach (var spec in abbrev.Attributes)
        {
            var v = DwarfAttributeValue.Read(ref r, spec, unit.Header);
            switch (spec.Name)
            {
                case DwAt.LowPc: low = v; break;
                case DwAt.HighPc: high = v; break;
                case DwAt.Ranges: rangesAttr = v; break;
                case DwAt.EntryPc: entryPc = v; break;
                case DwAt.CallFile when v.IsConstant: callFile = v.Value; break;
                case DwAt.CallLine when v.IsConstant: callLine = v.Value; break;
                case DwAt.CallColumn when v.IsConstant: callColumn = v.Value; break;
            }
        }
        ranges.Clear();
        budget -= unit.AppendRanges(low, high, rangesAttr, ranges, budget);
        if (ranges.Count == 0) return -1; // a declaration, an abstract instance, or code that was dropped
        // The entry: DW_AT_entry_pc (DWARF 5 allows an offset from the scope's base), else low_pc,
        // else the first range gcc lists (the hot part, before the .cold one).
        ulong baseAddress = low is { IsAddress: true } l ? unit.Address(l) : ranges[0].Start;
        ulong entry = entryPc switch
        {
            { IsAddress: true } e => unit.Address(e),
            { IsConstant: true } e => unchecked(baseAddress + e.Value),
            _ => baseAddress,
        };
        int me = scopes.Count;
        scopes.Add(new Scope(die, abbrev.Tag, parent, callFile, Clamp(callLine), Clamp(callColumn), entry));
        foreach (var range in ranges) index.Add(new IndexEntry(range.Start, range.End, me));
        return me;
    }

    private static uint Clamp(ulong v) => v > int.MaxValue ? int.MaxValue : (uint)v;
}
