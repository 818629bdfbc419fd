namespace PSLinuxTrace.Engine.Dwarf;

public sealed partial class DwarfSourceInfo
{
    /// <summary>One unit and what was parsed of it; a part that failed keeps its error, so it fails once.</summary>
    private sealed class UnitState
    {
        public DwarfUnit? Unit;
        public BadInputFormatException? Error;
        public bool LinesLoaded, ScopesLoaded;
        public DwarfLineTable? Lines;
        public DwarfScopeTree? Scopes;
        public BadInputFormatException? LinesError, ScopesError;
    }

    private UnitState State(ulong offset)
    {
        if (_units.TryGetValue(offset, out var state)) return state;
        state = new UnitState();
        try
        {
            var header = DwarfUnitHeader.Read(_s, offset);
            if (!_abbreviations.TryGetValue(header.AbbrevOffset, out var abbreviations))
                _abbreviations[header.AbbrevOffset] = abbreviations = DwarfAbbreviations.Parse(_s[DwarfSectionKind.Abbrev], header.AbbrevOffset);
            state.Unit = DwarfUnit.Open(_s, header, abbreviations);
        }
        catch (BadInputFormatException ex)
        {
            state.Error = ex;
            Warn(ex);
        }
        return _units[offset] = state;
    }

    private DwarfLineTable? Lines(UnitState state)
    {
        if (state.LinesLoaded) return state.Lines;
        state.LinesLoaded = true;
        if (state.Unit?.StmtList is not { } offset) return null;
        try
        {
            state.Lines = DwarfLineTable.Parse(_s, offset, state.Unit);
        }
        catch (BadInputFormatException ex)
        {
            state.LinesError = ex;
            Warn(ex);
        }
        return state.Lines;
    }

    private DwarfScopeTree? Scopes(UnitState state)
    {
        if (state.ScopesLoaded) return state.Scopes;
        state.ScopesLoaded = true;
        // A skeleton's functions are in its .dwo file, which this reader does not open: lines only.
        if (state.Unit is not { IsSkeleton: false } unit) return null;
        try
        {
            state.Scopes = DwarfScopeTree.Build(_s, unit);
        }
        catch (BadInputFormatException ex)
        {
            state.ScopesError = ex;
            Warn(ex);
        }
        return state.Scopes;
    }

    /// <summary>Every unit header of .debug_info, read once when first needed; damage ends the list there.</summary>
    private List<DwarfUnitHeader> Headers()
    {
        if (_headers is not null) return _headers;
        var list = new List<DwarfUnitHeader>();
        ulong size = _s.SizeOf(DwarfSectionKind.Info), offset = 0;
        try
        {
            while (offset < size)
            {
                var h = DwarfUnitHeader.Read(_s, offset);
                list.Add(h);
                offset = h.End;
            }
        }
        catch (BadInputFormatException ex)
        {
            Warn(ex);
        }
        return _headers = list;
    }

    /// <summary>The unit whose DIEs hold .debug_info offset <paramref name="offset"/> (for DW_FORM_ref_addr), or null.</summary>
    private DwarfUnit? UnitContaining(ulong offset)
    {
        var headers = Headers();
        int lo = 0, hi = headers.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (headers[mid].End <= offset) lo = mid + 1;
            else if (headers[mid].Offset > offset) hi = mid - 1;
            else return headers[mid].Contains(offset) ? State(headers[mid].Offset).Unit : null;
        }
        return null;
    }

    /// <summary>
    /// The names of the function DIE at <paramref name="die"/>: its linkage name (else its name)
    /// and its name, following DW_AT_abstract_origin and DW_AT_specification, into other units
    /// too, as bfd's find_abstract_instance does. Cached per DIE.
    /// </summary>
    private (string? Function, string? Name) NamesOf(DwarfUnit unit, ulong die)
    {
        if (_names.TryGetValue(die, out var cached)) return cached;
        string? linkage = null, name = null;
        var seen = new HashSet<ulong>();
        try
        {
            for (ulong at = die; seen.Count < MaxReferenceHops && seen.Add(at);)
            {
                var owner = unit.Header.Contains(at) ? unit : UnitContaining(at);
                if (owner is null) break;
                unit = owner;
                var (l, n, next) = ReadNameAttributes(unit, at);
                linkage ??= l;
                name ??= n;
                if (next is not { } target) break;
                at = target;
            }
        }
        catch (BadInputFormatException ex)
        {
            Warn(ex); // a damaged reference costs the name, not the frame
        }
        return _names[die] = (linkage ?? name, name);
    }

    private (string? Linkage, string? Name, ulong? Next) ReadNameAttributes(DwarfUnit unit, ulong die)
    {
        var r = new DwarfReader(_s.Prefix(DwarfSectionKind.Info, unit.Header.End)[..(int)unit.Header.End], ".debug_info", die);
        ulong code = r.Uleb();
        var abbrev = unit.Abbreviations.Find(code) ?? throw r.Bad($"DIE at 0x{die:x} uses unknown abbreviation {code}");
        DwarfAttributeValue? linkage = null, name = null;
        ulong? origin = null, specification = null;
        foreach (var spec in abbrev.Attributes)
        {
            var v = DwarfAttributeValue.Read(ref r, spec, unit.Header);
            switch (spec.Name)
            {
                case DwAt.LinkageName or DwAt.MipsLinkageName when v.IsString: linkage ??= v; break;
                case DwAt.Name when v.IsString: name = v; break;
                case DwAt.AbstractOrigin when v.Kind == DwarfValueKind.Reference: origin = v.Value; break;
                case DwAt.Specification when v.Kind == DwarfValueKind.Reference: specification = v.Value; break;
            }
        }
        return (linkage is { } l ? unit.String(l) : null, name is { } n ? unit.String(n) : null, origin ?? specification);
    }

    /// <summary>How many units have had their line table or function tree parsed (laziness, for tests).</summary>
    internal int ParsedUnitCount
    {
        get { lock (_gate) return _units.Values.Count(u => u.LinesLoaded || u.ScopesLoaded); }
    }

    /// <summary>How many units .debug_info holds.</summary>
    internal int UnitCount
    {
        get { lock (_gate) return Headers().Count; }
    }

    /// <summary>Every line-table row address of every unit (for tests that compare whole files with addr2line).</summary>
    internal List<ulong> AllLineRowAddresses()
    {
        lock (_gate)
        {
            var all = new List<ulong>();
            foreach (var h in Headers())
                if (Lines(State(h.Offset)) is { } table) all.AddRange(table.RowAddresses());
            return all;
        }
    }
}
