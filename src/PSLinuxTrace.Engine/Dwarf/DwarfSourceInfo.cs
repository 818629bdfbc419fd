using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>
/// Source locations and inlined frames of code addresses, from one file's DWARF (.debug_info,
/// .debug_line and the sections they index; DWARF 2 to 5, compressed or not): what
/// `addr2line -f -i -e FILE ADDR` prints. Loading reads nothing; the first lookup reads the
/// address → unit index (.debug_aranges; the unit DIEs only for what it misses), and a unit's
/// line table and function tree are parsed the first time an address falls in that unit, then
/// kept. Compressed sections are inflated only as far as the units looked at.
/// Thread-safe: lookups take one lock.
/// </summary>
/// <remarks>
/// Addresses are file addresses: the module's own virtual addresses (st_value space), i.e. a
/// runtime pc minus the module's load bias. A separate debug file shares them with its module.
/// For a caller frame (a return address), look up pc - 1, as gdb and eu-stack do, so a call
/// that ends a function is not shown at the next one. Relocatable objects (.o) are not supported:
/// their DWARF needs relocations applied first.
/// </remarks>
public sealed partial class DwarfSourceInfo
{
    private const int MaxWarnings = 64, MaxFrames = 256, MaxReferenceHops = 32;

    private readonly DwarfSections _s;
    private readonly object _gate = new();
    private readonly Dictionary<ulong, UnitState> _units = new();
    private readonly Dictionary<ulong, DwarfAbbreviations> _abbreviations = new();
    private readonly Dictionary<ulong, (string? Function, string? Name)> _names = new();
    private readonly List<string> _warnings = new();
    private List<DwarfUnitHeader>? _headers;
    private DwarfAddressIndex? _index;

    private DwarfSourceInfo(DwarfSections sections) => _s = sections;

    /// <summary>
    /// The DWARF of <paramref name="debugInfoFile"/> (a module, or its separate debug file; see
    /// <see cref="DebugFileLocator"/>), or null when it has no .debug_info. The file must stay
    /// open while this object is used. Nothing is parsed until the first lookup.
    /// </summary>
    public static DwarfSourceInfo? Load(ElfFile debugInfoFile) => Load(DwarfSections.FromElf(debugInfoFile));

    /// <summary>The DWARF in <paramref name="sections"/> (e.g. <see cref="DwarfSections.FromBytes"/>: the fuzzing entry), or null without .debug_info.</summary>
    public static DwarfSourceInfo? Load(DwarfSections sections) =>
        sections.Has(DwarfSectionKind.Info) ? new DwarfSourceInfo(sections) : null;

    /// <summary>Where the DWARF comes from.</summary>
    public string Name => _s.Name;

    /// <summary>Damage met so far (the first 64 messages): the parts of the DWARF that lookups had to do without.</summary>
    public IReadOnlyList<string> Warnings
    {
        get { lock (_gate) return _warnings.ToArray(); }
    }

    /// <summary>
    /// The source frames of <paramref name="fileAddress"/>, innermost first: for inlined code the
    /// inlined callee (its name, the address's file:line:column), then each caller up to the real
    /// function (its name, the file:line:column of the call inside it). A single frame with a null
    /// Function when the line table covers the address but no function DIE does; empty when no
    /// unit covers it. Throws BadInputFormatException only when damage left nothing to answer with.
    /// </summary>
    public IReadOnlyList<SourceFrame> Lookup(ulong fileAddress)
    {
        lock (_gate)
        {
            var units = UnitsAt(fileAddress);
            BadInputFormatException? damage = null;
            foreach (ulong unitOffset in units)
            {
                var state = State(unitOffset);
                if (state.Unit is null)
                {
                    damage ??= state.Error;
                    continue;
                }
                var lines = Lines(state);
                var scopes = Scopes(state);
                damage ??= state.LinesError ?? state.ScopesError;
                DwarfLineRow row = default;
                bool hasRow = lines is not null && lines.TryFind(fileAddress, out row);
                int inner = scopes?.Innermost(fileAddress) ?? -1;
                if (!hasRow && inner < 0) continue;
                return Frames(state, lines, hasRow ? row : null, scopes, inner);
            }
            if (damage is not null) throw damage;
            return [];
        }
    }

    /// <summary>The units whose ranges hold <paramref name="fileAddress"/>, tightest first (call with the lock held).</summary>
    private List<ulong> UnitsAt(ulong fileAddress)
    {
        _index ??= DwarfAddressIndex.FromAranges(_s, Warn);
        var units = _index.UnitsAt(fileAddress);
        if (units.Count == 0 && !_index.IsComplete)
        {
            // Outside every arange: index the units the aranges do not name (all of them without aranges).
            _index = _index.WithUncoveredUnits(Headers(), offset => State(offset).Unit ?? throw State(offset).Error!,
                unit => Lines(State(unit.Header.Offset))?.SequenceRanges() ?? [], Warn);
            units = _index.UnitsAt(fileAddress);
        }
        return units;
    }

    private List<SourceFrame> Frames(UnitState state, DwarfLineTable? lines, DwarfLineRow? row, DwarfScopeTree? scopes, int inner)
    {
        string? file = row is { } r ? lines!.FilePath(r.File) : null;
        int line = row is { } r2 ? (int)Math.Min(r2.Line, int.MaxValue) : 0;
        int column = row is { } r3 ? (int)Math.Min(r3.Column, int.MaxValue) : 0;
        var frames = new List<SourceFrame>();
        if (scopes is null || inner < 0)
        {
            frames.Add(new SourceFrame(null, file, line, column, false));
            return frames;
        }
        for (int i = inner; ;)
        {
            var scope = scopes[i];
            var (function, name) = NamesOf(state.Unit!, scope.Die);
            frames.Add(new SourceFrame(function, file, line, column, scope.IsInlined) { Name = name, EntryAddress = scope.Entry });
            // bfd's inliner chain: from an inlined call to the scope that holds it, until a real function.
            if (!scope.IsInlined || scope.Parent < 0 || frames.Count >= MaxFrames) break;
            file = lines?.FilePath(scope.CallFile);
            line = (int)scope.CallLine;
            column = (int)scope.CallColumn;
            i = scope.Parent;
        }
        return frames;
    }

    private void Warn(BadInputFormatException ex)
    {
        if (_warnings.Count < MaxWarnings && !_warnings.Contains(ex.Message)) _warnings.Add(ex.Message);
    }
}
