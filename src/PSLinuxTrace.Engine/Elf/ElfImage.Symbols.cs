namespace PSLinuxTrace.Engine.Elf;

public sealed partial class ElfImage
{
    private const uint MaxSymbols = 1 << 20, MaxBuckets = 1 << 20;
    private const ulong MaxStringTable = 64 << 20;

    /// <summary>
    /// The dynamic symbols, found as ld.so finds them: DT_SYMTAB and DT_STRTAB/DT_STRSZ, counted from
    /// DT_HASH's nchain or by walking DT_GNU_HASH's chains to the last symbol. Null when the image has no
    /// such tables or their memory is not readable; BadInputFormatException when they break the format.
    /// </summary>
    public ElfSymbolTable? DynamicSymbols => _dynamicSymbols.Value;

    private ElfSymbolTable? LoadDynamicSymbols()
    {
        ulong? Tag(long tag) => DynamicEntries.FirstOrDefault(e => e.Tag == tag) is { Tag: not 0 } e ? e.Value : null;
        if (Tag(ElfDynamicEntry.DT_SYMTAB) is not { } symtabPtr || Tag(ElfDynamicEntry.DT_STRTAB) is not { } strtabPtr
            || Tag(ElfDynamicEntry.DT_STRSZ) is not { } strsz)
            return null;
        if (Tag(ElfDynamicEntry.DT_SYMENT) is { } syment && syment != 24) throw Bad($"DT_SYMENT is {syment}, not 24.");
        if (strsz == 0 || strsz > MaxStringTable) throw Bad($"DT_STRSZ {strsz} is not a plausible string table size.");
        ulong symtab = FileAddressOf(symtabPtr, "DT_SYMTAB"), strtab = FileAddressOf(strtabPtr, "DT_STRTAB");
        ulong? gnuHash = Tag(ElfDynamicEntry.DT_GNU_HASH) is { } g ? FileAddressOf(g, "DT_GNU_HASH") : null;
        ulong? sysvHash = Tag(ElfDynamicEntry.DT_HASH) is { } h ? FileAddressOf(h, "DT_HASH") : null;

        // Only a hash table says how many symbols there are; prefer the GNU one, as ld.so does.
        (uint Count, ulong HashSize)? counted = gnuHash is { } gh ? CountFromGnuHash(gh) : sysvHash is { } sh ? CountFromSysvHash(sh) : null;
        if (counted is not { } c) return null;
        ulong hashAt = gnuHash ?? sysvHash!.Value;
        var symbols = ReadAt(symtab, c.Count * 24UL);
        var strings = ReadAt(strtab, strsz);
        var hash = ReadAt(hashAt, c.HashSize);
        if (symbols is null || strings is null || hash is null) return null;

        // One buffer holds the three tables, each then addressed like a section of a file.
        var blob = new byte[symbols.Length + strings.Length + hash.Length];
        symbols.CopyTo(blob, 0);
        strings.CopyTo(blob, symbols.Length);
        hash.CopyTo(blob, symbols.Length + strings.Length);
        var symSection = new ElfSection(1, ".dynsym", ElfSection.SHT_DYNSYM, ElfSection.SHF_ALLOC, symtab, 0, (ulong)symbols.Length, 2, 1, 8, 24);
        var strSection = new ElfSection(2, ".dynstr", ElfSection.SHT_STRTAB, ElfSection.SHF_ALLOC, strtab, (ulong)symbols.Length, strsz, 0, 0, 1, 0);
        var hashSection = new ElfSection(3, gnuHash is null ? ".hash" : ".gnu.hash", gnuHash is null ? ElfSection.SHT_HASH : ElfSection.SHT_GNU_HASH,
            ElfSection.SHF_ALLOC, hashAt, (ulong)(symbols.Length + strings.Length), (ulong)hash.Length, 1, 0, 8, 0);
        return new ElfSymbolTable(new ImageTables(Name, blob), symSection, strSection, "dynsym",
            gnuHash is null ? null : hashSection, gnuHash is null ? hashSection : null, null, null);
    }

    /// <summary>SysV hash: [nbucket, nchain] [buckets] [chains]; nchain is the symbol count.</summary>
    private (uint, ulong)? CountFromSysvHash(ulong at)
    {
        if (ReadAt(at, 8) is not { } head) return null;
        uint nbucket = ElfFile.U32(head, 0), nchain = ElfFile.U32(head, 4);
        if (nbucket is 0 or > MaxBuckets || nchain > MaxSymbols) throw Bad($"DT_HASH claims {nbucket} buckets and {nchain} symbols.");
        return (nchain, 8 + ((ulong)nbucket + nchain) * 4);
    }

    /// <summary>
    /// GNU hash: [nbuckets, symoffset, bloom_size, bloom_shift] [bloom: u64 x bloom_size] [buckets] [chain].
    /// The last symbol is the end of the chain that starts at the highest bucket (its bit 0 set).
    /// </summary>
    private (uint, ulong)? CountFromGnuHash(ulong at)
    {
        if (ReadAt(at, 16) is not { } head) return null;
        uint nbuckets = ElfFile.U32(head, 0), symoffset = ElfFile.U32(head, 4), bloomSize = ElfFile.U32(head, 8);
        if (nbuckets is 0 or > MaxBuckets || bloomSize > MaxBuckets || symoffset > MaxSymbols)
            throw Bad($"DT_GNU_HASH claims {nbuckets} buckets, {bloomSize} bloom words and symbol offset {symoffset}.");
        ulong bucketsAt = at + 16 + bloomSize * 8UL, chainAt = bucketsAt + nbuckets * 4UL;
        if (ReadAt(bucketsAt, nbuckets * 4UL) is not { } buckets) return null;
        uint last = 0;
        for (int i = 0; i < buckets.Length; i += 4) last = Math.Max(last, ElfFile.U32(buckets, i));
        uint count = symoffset;
        if (last >= symoffset)
        {
            for (uint index = last; ; index++)
            {
                if (index - symoffset >= MaxSymbols) throw Bad($"DT_GNU_HASH's chains run past {MaxSymbols} symbols.");
                if (ReadAt(chainAt + (index - symoffset) * 4UL, 4) is not { } word) return null;
                if ((ElfFile.U32(word, 0) & 1) != 0) { count = index + 1; break; }
            }
        }
        if (count > MaxSymbols) throw Bad($"DT_GNU_HASH implies {count} symbols.");
        return (count, chainAt + (count - symoffset) * 4UL - at);
    }

    /// <summary>The dynamic tables copied out of memory, addressed by their offset in one buffer.</summary>
    private sealed class ImageTables(string name, byte[] data) : IElfBytes
    {
        public string Name { get; } = name;

        public ReadOnlySpan<byte> GetBytes(ulong offset, ulong size)
        {
            if (offset > (ulong)data.Length || size > (ulong)data.Length - offset)
                throw new BadInputFormatException($"{Name}: 0x{offset:x}+0x{size:x} lies outside the dynamic tables read from memory (0x{data.Length:x} bytes).");
            return data.AsSpan((int)offset, (int)size);
        }

        public ReadOnlySpan<byte> GetSectionBytes(ElfSection section) =>
            section.Type == ElfSection.SHT_NOBITS ? ReadOnlySpan<byte>.Empty : GetBytes(section.Offset, section.Size);
    }
}
