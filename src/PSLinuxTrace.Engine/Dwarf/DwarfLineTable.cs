namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>One row of a line-number matrix.</summary>
internal readonly record struct DwarfLineRow(ulong Address, uint File, uint Line, uint Column, bool IsStmt, bool EndSequence);

/// <summary>
/// One line-number program of .debug_line (DWARF 2-5, §6.2), run once into its matrix and kept
/// as address-sorted sequences for binary search. Lookups follow binutils (bfd/dwarf2.c), which
/// `addr2line` uses: of several rows at one address the last wins, sequences nested in an
/// earlier one are dropped and overlapping ones trimmed, and the row that holds an address is the
/// last one at or before it, unless that is the end of its sequence.
/// </summary>
internal sealed partial class DwarfLineTable
{
    private readonly record struct Sequence(ulong Low, ulong High, int First, int Count);
    private readonly record struct FileEntry(string? Name, ulong Directory);

    private readonly DwarfLineRow[] _rows;
    private readonly Sequence[] _sequences;
    private readonly FileEntry[] _files;
    private readonly string?[] _directories;
    private readonly string?[] _paths;
    private readonly int _version;
    private readonly string? _compDir;

    public ulong Offset { get; }

    private DwarfLineTable(ulong offset, int version, string? compDir, string?[] directories, FileEntry[] files, List<DwarfLineRow> rows, List<Sequence> sequences)
    {
        Offset = offset;
        _version = version;
        _compDir = compDir;
        _directories = directories;
        _files = files;
        _paths = new string?[files.Length];
        _rows = rows.ToArray();
        _sequences = Trim(sequences);
    }

    /// <summary>The row whose range holds <paramref name="address"/>, if any.</summary>
    public bool TryFind(ulong address, out DwarfLineRow row)
    {
        row = default;
        int lo = 0, hi = _sequences.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var seq = _sequences[mid];
            if (address < seq.Low) hi = mid - 1;
            else if (address >= seq.High) lo = mid + 1;
            else return TryFindIn(seq, address, out row);
        }
        return false;
    }

    private bool TryFindIn(Sequence seq, ulong address, out DwarfLineRow row)
    {
        // The last row at or before the address, among all but the sequence's end row.
        int lo = seq.First, hi = seq.First + seq.Count - 2, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_rows[mid].Address <= address) { found = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        row = found >= 0 ? _rows[found] : default;
        return found >= 0 && !row.EndSequence;
    }

    /// <summary>The address ranges of the table's sequences (the index of units whose DIE gives none).</summary>
    public IEnumerable<AddressRange> SequenceRanges() => _sequences.Select(q => new AddressRange(q.Low, q.High));

    /// <summary>Every row's address, in program order (for tests that compare with addr2line).</summary>
    internal IEnumerable<ulong> RowAddresses() => _rows.Where(r => !r.EndSequence).Select(r => r.Address);

    /// <summary>
    /// The full path of file <paramref name="index"/> as addr2line prints it (bfd's
    /// concat_filename): an absolute name as it is; else directory and name, with comp_dir first
    /// when the directory is relative. DWARF 5 numbers files from 0, earlier versions from 1.
    /// Null for an unknown index.
    /// </summary>
    public string? FilePath(ulong index)
    {
        if (_version < 5)
        {
            if (index == 0) return null;
            index--;
        }
        if (index >= (ulong)_files.Length) return null;
        return _paths[index] ??= BuildPath(_files[index]);
    }

    private string? BuildPath(FileEntry f)
    {
        if (f.Name is null) return null;
        if (f.Name.StartsWith('/')) return f.Name;
        ulong d = f.Directory;
        // Before DWARF 5, directory 0 is comp_dir itself; the table's entries start at 1.
        string? subdir = _version < 5 ? (d == 0 ? null : d - 1 < (ulong)_directories.Length ? _directories[d - 1] : null)
                                      : d < (ulong)_directories.Length ? _directories[d] : null;
        string? dir = subdir is null || !subdir.StartsWith('/') ? _compDir : null;
        if (dir is null)
        {
            dir = subdir;
            subdir = null;
        }
        if (dir is null) return f.Name;
        return subdir is null ? $"{dir}/{f.Name}" : $"{dir}/{subdir}/{f.Name}";
    }

    /// <summary>Sorts sequences by start, drops the ones nested in an earlier one and trims overlaps (bfd's sort_line_sequences).</summary>
    private static Sequence[] Trim(List<Sequence> sequences)
    {
        // Equal starts: the longest first; then program order (the list is in program order, and the sort is stable).
        var sorted = sequences.Where(s => s.Count >= 2 && s.High > s.Low)
            .OrderBy(s => s.Low).ThenByDescending(s => s.High).ToList();
        var kept = new List<Sequence>(sorted.Count);
        ulong lastHigh = 0;
        foreach (var s in sorted)
        {
            var seq = s;
            if (kept.Count > 0 && seq.Low < lastHigh)
            {
                if (seq.High <= lastHigh) continue;
                seq = seq with { Low = lastHigh };
            }
            kept.Add(seq);
            lastHigh = seq.High;
        }
        return kept.ToArray();
    }
}
