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

    /// <summary>
    /// A DW_TAG_call_site (DWARF 5) or DW_TAG_GNU_call_site (the DWARF 4 extension): the call's return
    /// address (DW_AT_call_return_pc, the GNU form's DW_AT_low_pc; for a tail call the address after the
    /// jump), the DIE of what it calls (DW_AT_call_origin, the GNU form's DW_AT_abstract_origin; 0 for an
    /// indirect call), whether it is a tail call, and the real function it is in (a scope, not inlined).
    /// </summary>
    internal readonly record struct CallSite(ulong ReturnAddress, ulong Origin, bool IsTailCall, int Function);

    private readonly record struct IndexEntry(ulong Start, ulong End, int Scope);

    private readonly Scope[] _scopes;
    private readonly IndexEntry[] _index;
    private readonly ulong[] _maxEnd; // _maxEnd[i]: the largest End among _index[0..i]
    private readonly CallSite[] _callSites; // by return address
    private readonly Dictionary<ulong, ulong> _entryOfDie; // a subprogram DIE (or the abstract DIE it instantiates) → its entry

    private DwarfScopeTree(Scope[] scopes, IndexEntry[] index, CallSite[] callSites, Dictionary<ulong, ulong> entryOfDie)
    {
        _scopes = scopes;
        _index = index;
        _callSites = callSites;
        _entryOfDie = entryOfDie;
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

    /// <summary>The call site whose return address is <paramref name="returnAddress"/>, if this unit has one.</summary>
    public CallSite? CallSiteReturningTo(ulong returnAddress)
    {
        int lo = 0, hi = _callSites.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            ulong at = _callSites[mid].ReturnAddress;
            if (at == returnAddress) return _callSites[mid];
            if (at < returnAddress) lo = mid + 1;
            else hi = mid - 1;
        }
        return null;
    }

    /// <summary>The tail calls made by the real function of scope <paramref name="function"/> (inlined code in it included).</summary>
    public IEnumerable<CallSite> TailCallsIn(int function) => _callSites.Where(c => c.IsTailCall && c.Function == function);

    /// <summary>The real (not inlined) function scope that holds scope <paramref name="scope"/>.</summary>
    public int RealFunction(int scope)
    {
        for (int hops = 0; scope >= 0 && _scopes[scope].IsInlined && _scopes[scope].Parent >= 0 && hops < _scopes.Length; hops++) scope = _scopes[scope].Parent;
        return scope;
    }

    /// <summary>The entry address of the function DIE <paramref name="die"/> (a concrete subprogram, or the abstract one an out-of-line copy instantiates) in this unit.</summary>
    public ulong? EntryOf(ulong die) => _entryOfDie.TryGetValue(die, out ulong entry) ? entry : null;

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
        var callSites = new List<CallSite>();
        var entryOfDie = new Dictionary<ulong, ulong>();
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
                me = ReadScope(ref r, unit, abbrev, die, current, scopes, ranges, index, entryOfDie, ref budget);
            else if (abbrev.Tag is DwTag.CallSite or DwTag.GnuCallSite)
            {
                var (site, sibling) = ReadCallSite(ref r, unit, abbrev, current, scopes);
                if (site is { } found) callSites.Add(found);
                // Its children are DW_TAG_call_site_parameter: no code, no call sites.
                if (abbrev.HasChildren && sibling > r.Position && sibling < header.End)
                {
                    r.Position = sibling;
                    continue;
                }
            }
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
        callSites.Sort((a, b) => a.ReturnAddress.CompareTo(b.ReturnAddress));
        return new DwarfScopeTree(scopes.ToArray(), index.ToArray(), callSites.ToArray(), entryOfDie);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static (CallSite? Site, ulong Sibling) ReadCallSite(ref DwarfReader r, DwarfUnit unit, DwarfAbbreviation abbrev, int current, List<Scope> scopes)
    {
        DwarfAttributeValue? returnPc = null;
        ulong origin = 0, sibling = 0;
        bool tail = false;
        bool gnu = abbrev.Tag == DwTag.GnuCallSite;
        for (int i = 0; i < abbrev.Attributes.Length; i++)
        {
            var spec = abbrev.Attributes[i];
            var v = DwarfAttributeValue.Read(ref r, spec, unit.Header);
            if (i == abbrev.SiblingIndex && v.Kind == DwarfValueKind.Reference) sibling = v.Value;
            switch (spec.Name)
            {
                case DwAt.CallReturnPc when !gnu && v.IsAddress: returnPc = v; break;
                case DwAt.LowPc when gnu && v.IsAddress: returnPc = v; break;
                case DwAt.CallOrigin or DwAt.AbstractOrigin when v.Kind == DwarfValueKind.Reference: origin = v.Value; break;
                case DwAt.CallTailCall or DwAt.GnuTailCall: tail = v.Value != 0; break;
            }
        }
        if (returnPc is not { } pc || current < 0) return (null, sibling);
        // The real function it is in: up from the enclosing scope past inlined calls.
        int function = current;
        for (int hops = 0; scopes[function].IsInlined && scopes[function].Parent >= 0 && hops < scopes.Count; hops++) function = scopes[function].Parent;
        return (new CallSite(unit.Address(pc), origin, tail, function), sibling);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SkipAttributes(ref DwarfReader r, DwarfAbbreviation abbrev, in DwarfUnitHeader header)
    {
        foreach (var spec in abbrev.Attributes) DwarfAttributeValue.Read(ref r, spec, header);
    }

    /// <summary>Tags whose children are members, enumerators, subranges or parameters, never code (DWARF 5 §5).</summary>
    private static bool HoldsNoCode(ushort tag) => tag is 0x01 or 0x04 or 0x13 or 0x15 or 0x17 or 0x02;
    // array_type, enumeration_type, structure_type, subroutine_type, union_type, class_type (call sites are read above).
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
        List<Scope> scopes, List<AddressRange> ranges, List<IndexEntry> index, Dictionary<ulong, ulong> entryOfDie, ref int budget)
    {
        DwarfAttributeValue? low = null, high = null, rangesAttr = null, entryPc = null;
        ulong callFile = 0, callLine = 0, callColumn = 0, origin = 0;
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
                case DwAt.AbstractOrigin or DwAt.Specification when v.Kind == DwarfValueKind.Reference: origin = v.Value; break;
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
        if (abbrev.Tag == DwTag.Subprogram)
        {
            // A call site names the callee's DIE: this one, or the abstract (or declaration) DIE this out-of-line copy refers to.
            entryOfDie[die] = entry;
            if (origin != 0) entryOfDie.TryAdd(origin, entry);
        }
        foreach (var range in ranges) index.Add(new IndexEntry(range.Start, range.End, me));
        return me;
    }

    private static uint Clamp(ulong v) => v > int.MaxValue ? int.MaxValue : (uint)v;
}
