namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>
/// Address → unit. Read from .debug_aranges where the file has it (gcc writes one set per unit);
/// the first address the aranges miss adds the units they do not cover (clang writes none),
/// indexed by their unit DIE's ranges, or a unit DIE without ranges by its line table's
/// sequences, as bfd does. Only unit DIEs are read here: a unit's function tree waits for the
/// first address that falls in it.
/// </summary>
internal sealed class DwarfAddressIndex
{
    private readonly record struct Entry(ulong Start, ulong End, ulong Unit);

    private readonly Entry[] _entries;
    private readonly ulong[] _maxEnd;
    private readonly HashSet<ulong> _covered;

    /// <summary>True once every unit is in the index (not only those the aranges name).</summary>
    public bool IsComplete { get; }

    private DwarfAddressIndex(List<Entry> entries, HashSet<ulong> covered, bool complete)
    {
        entries.Sort((a, b) => a.Start.CompareTo(b.Start));
        _entries = entries.ToArray();
        _covered = covered;
        IsComplete = complete;
        _maxEnd = new ulong[_entries.Length];
        ulong max = 0;
        for (int i = 0; i < _entries.Length; i++) _maxEnd[i] = max = Math.Max(max, _entries[i].End);
    }

    /// <summary>The units (by .debug_info offset) whose ranges hold the address, the tightest range first.</summary>
    public List<ulong> UnitsAt(ulong address)
    {
        int lo = 0, hi = _entries.Length - 1, last = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_entries[mid].Start <= address) { last = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        var hits = new List<Entry>();
        for (int j = last; j >= 0 && _maxEnd[j] > address; j--)
            if (_entries[j].End > address) hits.Add(_entries[j]);
        hits.Sort((a, b) => (a.End - a.Start).CompareTo(b.End - b.Start));
        var units = new List<ulong>(hits.Count);
        foreach (var h in hits)
            if (!units.Contains(h.Unit)) units.Add(h.Unit);
        return units;
    }

    /// <summary>The index .debug_aranges gives (empty, and not complete, without it or when it is damaged).</summary>
    public static DwarfAddressIndex FromAranges(DwarfSections s, Action<BadInputFormatException> warn)
    {
        var entries = new List<Entry>();
        var covered = new HashSet<ulong>();
        if (s.Has(DwarfSectionKind.Aranges))
        {
            try
            {
                ReadAranges(s[DwarfSectionKind.Aranges], entries, covered);
            }
            catch (BadInputFormatException ex)
            {
                // Damaged aranges: index every unit from its own DIE instead.
                warn(ex);
                entries.Clear();
                covered.Clear();
            }
        }
        return new DwarfAddressIndex(entries, covered, complete: false);
    }

    /// <summary>
    /// This index plus every unit of <paramref name="units"/> the aranges did not cover;
    /// <paramref name="openUnit"/> reads a unit DIE, <paramref name="lineRanges"/> gives a unit's
    /// line-table sequences. Units that fail to read are left out and reported through <paramref name="warn"/>.
    /// </summary>
    public DwarfAddressIndex WithUncoveredUnits(IReadOnlyList<DwarfUnitHeader> units, Func<ulong, DwarfUnit> openUnit,
        Func<DwarfUnit, IEnumerable<AddressRange>> lineRanges, Action<BadInputFormatException> warn)
    {
        var entries = new List<Entry>(_entries);
        foreach (var h in units)
        {
            if (_covered.Contains(h.Offset) || h.UnitType is not (DwUt.Compile or DwUt.Partial or DwUt.Skeleton)) continue;
            try
            {
                var unit = openUnit(h.Offset);
                if (unit.Tag is not (DwTag.CompileUnit or DwTag.PartialUnit or DwTag.SkeletonUnit)) continue;
                var ranges = unit.UnitRanges();
                IEnumerable<AddressRange> all = ranges.Count > 0 || unit.StmtList is null ? ranges : lineRanges(unit);
                foreach (var r in all) entries.Add(new Entry(r.Start, r.End, h.Offset));
            }
            catch (BadInputFormatException ex)
            {
                warn(ex);
            }
        }
        return new DwarfAddressIndex(entries, _covered, complete: true);
    }

    /// <summary>.debug_aranges sets (DWARF 5 §6.1.2): a header, then (address, length) tuples up to (0, 0).</summary>
    private static void ReadAranges(ReadOnlySpan<byte> section, List<Entry> entries, HashSet<ulong> covered)
    {
        var r = new DwarfReader(section, ".debug_aranges");
        while (!r.AtEnd)
        {
            ulong start = r.Position;
            ulong length = r.InitialLength(out int offsetSize);
            if (length > r.Remaining) throw r.Bad($"the set at 0x{start:x} runs past the end of the section");
            ulong end = r.Position + length;
            int version = r.U16();
            ulong unit = r.Offset(offsetSize);
            int addressSize = r.U8(), segmentSize = r.U8();
            if (version != 2) throw r.Bad($"the set at 0x{start:x} has version {version} (2 is known)");
            if (addressSize is not (4 or 8) || segmentSize != 0) throw r.Bad($"the set at 0x{start:x} has address size {addressSize}, segment size {segmentSize}");
            // Tuples start at a multiple of twice the address size from the set's start.
            ulong tuple = (ulong)addressSize * 2;
            ulong skip = (tuple - (r.Position - start) % tuple) % tuple;
            r.Skip(skip);
            covered.Add(unit);
            while (r.Position + tuple <= end)
            {
                ulong address = r.UInt(addressSize), size = r.UInt(addressSize);
                if (address == 0 && size == 0) break;
                if (size > 0 && address + size > address) entries.Add(new Entry(address, address + size, unit));
            }
            r.Position = end;
        }
    }
}
