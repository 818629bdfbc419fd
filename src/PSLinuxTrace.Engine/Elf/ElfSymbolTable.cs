using PSLinuxTrace.Engine.Model;
using System.Text;

namespace PSLinuxTrace.Engine.Elf;

/// <summary>
/// A symbol table (.symtab or .dynsym) read in place, from a file or from the tables an image in memory
/// holds (<see cref="ElfImage.DynamicSymbols"/>). Symbols are decoded on demand and cached;
/// <see cref="Lookup"/> uses the GNU or SysV hash table when the file has one (O(1), as ld.so
/// does) and otherwise a name index built on first use.
/// </summary>
public sealed class ElfSymbolTable
{
    private const int EntrySize = 24;
    private readonly IElfBytes _file;
    private readonly ElfSection _section, _strtab;
    private readonly ElfSection? _gnuHash, _sysvHash, _versym;
    private readonly string?[]? _versionNames;
    private readonly ElfSymbol?[] _cache;
    private Dictionary<string, int>? _byName;
    private int[]? _byAddress;
    private readonly object _gate = new();

    internal ElfSymbolTable(IElfBytes file, ElfSection section, ElfSection strtab, string source,
        ElfSection? gnuHash, ElfSection? sysvHash, ElfSection? versym, string?[]? versionNames)
    {
        _file = file;
        _section = section;
        _strtab = strtab;
        Source = source;
        _gnuHash = gnuHash;
        _sysvHash = sysvHash;
        _versym = versym;
        _versionNames = versionNames;
        ulong count = section.Size / EntrySize;
        if (count > int.MaxValue) throw new BadInputFormatException($"{file.Name}: {section.Name} claims {count} symbols.");
        Count = (int)count;
        _cache = new ElfSymbol?[Count];
    }

    /// <summary>"symtab" or "dynsym".</summary>
    public string Source { get; }

    /// <summary>Number of entries, including the null symbol at index 0.</summary>
    public int Count { get; }

    /// <summary>True when lookups go through the file's own hash table.</summary>
    public bool HasHashTable => _gnuHash is not null || _sysvHash is not null;

    public ElfSymbol this[int index]
    {
        get
        {
            if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index), index, $"the table has {Count} symbols.");
            return _cache[index] ??= Decode(index);
        }
    }

    /// <summary>Every symbol except the null symbol at index 0, in table order.</summary>
    public IEnumerable<ElfSymbol> All
    {
        get
        {
            for (int i = 1; i < Count; i++) yield return this[i];
        }
    }

    private ReadOnlySpan<byte> Entry(int index) => _file.GetBytes(_section.Offset + (ulong)index * EntrySize, EntrySize);

    private ReadOnlySpan<byte> RawName(int index)
    {
        uint nameOff = ElfFile.U32(Entry(index), 0);
        var str = _file.GetSectionBytes(_strtab);
        if (nameOff >= (uint)str.Length) throw new BadInputFormatException($"{_file.Name}: symbol {index} name offset {nameOff} lies outside {_strtab.Name}.");
        var rest = str[(int)nameOff..];
        int nul = rest.IndexOf((byte)0);
        if (nul < 0) throw new BadInputFormatException($"{_file.Name}: symbol {index} name is not NUL-terminated.");
        return rest[..nul];
    }

    private ElfSymbol Decode(int index)
    {
        var e = Entry(index);
        byte info = e[4], other = e[5];
        ushort shndx = ElfFile.U16(e, 6);
        ulong value = ElfFile.U64(e, 8), size = ElfFile.U64(e, 16);
        string name = Encoding.UTF8.GetString(RawName(index));
        string? version = null;
        bool isDefault = true;
        if (_versym is not null && _versionNames is not null)
        {
            ulong off = (ulong)index * 2;
            if (off + 2 <= _versym.Size)
            {
                ushort v = ElfFile.U16(_file.GetBytes(_versym.Offset + off, 2), 0);
                int vi = v & 0x7fff;
                isDefault = (v & 0x8000) == 0;
                if (vi >= 2 && vi < _versionNames.Length) version = _versionNames[vi];
            }
        }
        return new ElfSymbol(name, value, size, (ElfSymbolKind)(info & 0xf), (ElfSymbolBinding)(info >> 4), shndx, index, version, isDefault)
        {
            Visibility = (byte)(other & 0x3),
        };
    }

    /// <summary>
    /// The defined symbol named <paramref name="name"/> (exact, without @version), preferring the
    /// default version, then global over weak over local; null when there is none.
    /// </summary>
    public ElfSymbol? Lookup(string name)
    {
        int best = -1;
        foreach (int i in Candidates(name))
            if (best < 0 || Rank(i) > Rank(best)) best = i;
        return best < 0 ? null : this[best];
    }

    /// <summary>Every defined symbol named <paramref name="name"/> (several versions, or locals of several files).</summary>
    public IEnumerable<ElfSymbol> FindAll(string name)
    {
        foreach (int i in Candidates(name)) yield return this[i];
    }

    private int Rank(int index)
    {
        var s = this[index];
        int r = s.IsDefaultVersion ? 8 : 0;
        r += s.Binding switch { ElfSymbolBinding.Global or ElfSymbolBinding.GnuUnique => 4, ElfSymbolBinding.Weak => 2, _ => 0 };
        r += s.Kind is ElfSymbolKind.Section or ElfSymbolKind.File ? 0 : 1;
        return r;
    }

    private List<int> Candidates(string name)
    {
        var result = new List<int>(1);
        byte[] key = Encoding.UTF8.GetBytes(name);
        if (_gnuHash is not null) GnuHashCandidates(key, result);
        else if (_sysvHash is not null) SysvHashCandidates(key, result);
        else
        {
            var index = NameIndex();
            if (index.TryGetValue(name, out int first))
            {
                // The index holds the first; equal names are rare, so scan forward from the linked list.
                foreach (int i in _sameName![first]) result.Add(i);
            }
        }
        return result;
    }

    private bool IsDefinedMatch(int index, ReadOnlySpan<byte> key) =>
        ElfFile.U16(Entry(index), 6) != ElfSection.SHN_UNDEF && RawName(index).SequenceEqual(key);

    // GNU hash: [nbuckets, symoffset, bloom_size, bloom_shift] [bloom: u64 x bloom_size] [buckets: u32 x nbuckets] [chain: u32 ...]
    private void GnuHashCandidates(ReadOnlySpan<byte> key, List<int> result)
    {
        var h = _file.GetSectionBytes(_gnuHash!);
        if (h.Length < 16) throw new BadInputFormatException($"{_file.Name}: .gnu.hash is truncated.");
        uint nbuckets = ElfFile.U32(h, 0), symoffset = ElfFile.U32(h, 4), bloomSize = ElfFile.U32(h, 8), bloomShift = ElfFile.U32(h, 12);
        ulong bucketsOff = 16 + (ulong)bloomSize * 8, chainOff = bucketsOff + (ulong)nbuckets * 4;
        if (nbuckets == 0 || chainOff > (ulong)h.Length) throw new BadInputFormatException($"{_file.Name}: .gnu.hash header is inconsistent with its size.");
        uint hash = 5381;
        foreach (byte c in key) hash = hash * 33 + c;
        if (bloomSize > 0)
        {
            ulong word = ElfFile.U64(h, (int)(16 + (hash / 64 % bloomSize) * 8));
            ulong mask = (1UL << (int)(hash % 64)) | (1UL << (int)((hash >> (int)(bloomShift & 63)) % 64));
            if ((word & mask) != mask) return;
        }
        uint idx = ElfFile.U32(h, (int)(bucketsOff + hash % nbuckets * 4));
        if (idx < symoffset) return;
        for (; idx < (uint)Count; idx++)
        {
            ulong at = chainOff + (ulong)(idx - symoffset) * 4;
            if (at + 4 > (ulong)h.Length) throw new BadInputFormatException($"{_file.Name}: .gnu.hash chain runs past its section.");
            uint ch = ElfFile.U32(h, (int)at);
            if ((ch | 1) == (hash | 1) && IsDefinedMatch((int)idx, key)) result.Add((int)idx);
            if ((ch & 1) != 0) break;
        }
    }

    // SysV hash: [nbucket, nchain] [buckets: u32 x nbucket] [chains: u32 x nchain]
    private void SysvHashCandidates(ReadOnlySpan<byte> key, List<int> result)
    {
        var h = _file.GetSectionBytes(_sysvHash!);
        if (h.Length < 8) throw new BadInputFormatException($"{_file.Name}: .hash is truncated.");
        uint nbucket = ElfFile.U32(h, 0), nchain = ElfFile.U32(h, 4);
        if (nbucket == 0 || 8 + ((ulong)nbucket + nchain) * 4 > (ulong)h.Length) throw new BadInputFormatException($"{_file.Name}: .hash header is inconsistent with its size.");
        uint hash = 0;
        foreach (byte c in key)
        {
            hash = (hash << 4) + c;
            uint g = hash & 0xf0000000;
            if (g != 0) hash ^= g >> 24;
            hash &= ~g;
        }
        uint i = ElfFile.U32(h, (int)(8 + hash % nbucket * 4));
        for (uint steps = 0; i != 0 && steps <= nchain; steps++)
        {
            if (i >= nchain || i >= (uint)Count) throw new BadInputFormatException($"{_file.Name}: .hash chain points at symbol {i}, past the table.");
            if (IsDefinedMatch((int)i, key)) result.Add((int)i);
            i = ElfFile.U32(h, (int)(8 + ((ulong)nbucket + i) * 4));
        }
    }

    private Dictionary<int, List<int>>? _sameName;

    private Dictionary<string, int> NameIndex()
    {
        if (_byName is not null) return _byName;
        lock (_gate)
        {
            if (_byName is not null) return _byName;
            var byName = new Dictionary<string, int>(Count, StringComparer.Ordinal);
            var same = new Dictionary<int, List<int>>();
            for (int i = 1; i < Count; i++)
            {
                if (ElfFile.U16(Entry(i), 6) == ElfSection.SHN_UNDEF) continue;
                var raw = RawName(i);
                if (raw.IsEmpty) continue;
                string name = Encoding.UTF8.GetString(raw);
                if (byName.TryGetValue(name, out int first)) same[first].Add(i);
                else
                {
                    byName[name] = i;
                    same[i] = new List<int>(1) { i };
                }
            }
            _sameName = same;
            return _byName = byName;
        }
    }

    /// <summary>
    /// The function or object whose [Value, Value+Size) holds <paramref name="address"/> (an address
    /// in this file's own address space, i.e. before the load bias); otherwise the nearest function
    /// that starts below it; null when no symbol starts at or below it.
    /// </summary>
    public ElfSymbol? FindContaining(ulong address)
    {
        var order = AddressIndex();
        int lo = 0, hi = order.Length - 1, last = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (this[order[mid]].Value <= address) { last = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        if (last < 0) return null;
        ElfSymbol? preceding = null, containing = null;
        for (int k = last; k >= 0 && k > last - 256; k--)
        {
            var s = this[order[k]];
            if (containing is not null)
            {
                // Aliases at the same address (pause/__libc_pause): prefer the real definition over a weak alias.
                if (s.Value != containing.Value) break;
                if (s.Size > 0 && address - s.Value < s.Size && AliasRank(s) > AliasRank(containing)) containing = s;
                continue;
            }
            if (s.Size > 0 && address - s.Value < s.Size) { containing = s; continue; }
            if (preceding is null && s.Kind is ElfSymbolKind.Function or ElfSymbolKind.GnuIFunc) preceding = s;
        }
        return containing ?? preceding;
    }

    private static int AliasRank(ElfSymbol s) =>
        (s.Binding == ElfSymbolBinding.Weak ? 0 : 4) + (s.Kind is ElfSymbolKind.Function or ElfSymbolKind.GnuIFunc ? 2 : 0) + (s.IsDefaultVersion ? 1 : 0);

    private int[] AddressIndex()
    {
        if (_byAddress is not null) return _byAddress;
        lock (_gate)
        {
            if (_byAddress is not null) return _byAddress;
            var list = new List<int>();
            for (int i = 1; i < Count; i++)
            {
                var s = this[i];
                if (!s.IsDefined || s.SectionIndex == ElfSection.SHN_ABS || s.Value == 0) continue;
                if (s.Kind is ElfSymbolKind.Function or ElfSymbolKind.GnuIFunc or ElfSymbolKind.Object or ElfSymbolKind.NoType)
                    list.Add(i);
            }
            list.Sort((a, b) =>
            {
                int c = this[a].Value.CompareTo(this[b].Value);
                return c != 0 ? c : this[a].Size.CompareTo(this[b].Size);
            });
            return _byAddress = list.ToArray();
        }
    }

    public override string ToString() => $"{_file.Name} {Source} ({Count} symbols)";
}

/// <summary>The bytes a symbol table reads: an ELF file's, or the tables copied out of an image in memory.</summary>
internal interface IElfBytes
{
    string Name { get; }

    /// <summary>Bytes [offset, offset+size), bounds-checked (BadInputFormatException).</summary>
    ReadOnlySpan<byte> GetBytes(ulong offset, ulong size);

    /// <summary>The section's bytes (empty for SHT_NOBITS).</summary>
    ReadOnlySpan<byte> GetSectionBytes(ElfSection section);
}
