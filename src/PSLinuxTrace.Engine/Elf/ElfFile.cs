using System.Buffers.Binary;
using System.Text;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Memory;

namespace PSLinuxTrace.Engine.Elf;

/// <summary>
/// A zero-copy, lazy reader of ELF64 little-endian files (executables, shared objects, relocatable
/// objects, cores) over a memory-mapped file. The header and program headers are read on open;
/// sections, symbol tables, notes and hash tables when first asked for. Every offset, size and
/// count taken from the file is checked against the file before use: a truncated or corrupt file
/// raises <see cref="BadInputFormatException"/>, never an out-of-range read, a huge allocation or
/// an endless loop.
/// </summary>
public sealed class ElfFile : IDisposable, IFileContents, IElfBytes
{
    private const int Ehdr64Size = ElfLayout.Ehdr64Size, Phdr64Size = ElfLayout.Phdr64Size, Shdr64Size = 64, Sym64Size = 24;

    private readonly MappedFile _data;
    private readonly object _gate = new();
    private IReadOnlyList<ElfSection>? _sections;
    // Loaded on first use, once, thread-safely; a bad-format error is remembered like a result.
    private readonly Lazy<ElfSymbolTable?> _symtab, _dynsym;
    private readonly Lazy<byte[]?> _buildId;

    public string Name { get; }
    public long Length => _data.Length;
    public ElfHeader Header { get; }
    public IReadOnlyList<ElfProgramHeader> ProgramHeaders { get; }

    private ElfFile(MappedFile data, string name)
    {
        _data = data;
        Name = name;
        _symtab = new(() => LoadSymbolTable(ElfSection.SHT_SYMTAB));
        _dynsym = new(() => LoadSymbolTable(ElfSection.SHT_DYNSYM));
        _buildId = new(ReadBuildId);
        try
        {
            Header = ReadHeader();
            ProgramHeaders = ReadProgramHeaders();
        }
        catch (BadInputFormatException ex)
        {
            throw new BadInputFormatException(ex.Message.StartsWith(name, StringComparison.Ordinal) ? ex.Message : $"{name}: {ex.Message}", ex.InnerException);
        }
    }

    /// <summary>Maps and opens <paramref name="path"/>. FileNotFoundException/UnauthorizedAccessException pass through; bad bytes give BadInputFormatException.</summary>
    public static ElfFile Open(string path) => Open(MappedFile.Open(path), path);

    /// <summary>Maps and opens the file open in <paramref name="stream"/> (which it then owns), named <paramref name="name"/> in errors.</summary>
    public static ElfFile Open(FileStream stream, string name) => Open(MappedFile.Open(stream, name), name);

    private static ElfFile Open(MappedFile data, string name)
    {
        try
        {
            return new ElfFile(data, name);
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    public static ElfFile FromBytes(byte[] bytes, string name = "<memory>")
    {
        var data = MappedFile.FromBytes(bytes);
        try
        {
            return new ElfFile(data, name);
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    /// <summary>True when the file starts with the ELF magic (cheap check before Open).</summary>
    public static bool HasElfMagic(ReadOnlySpan<byte> start) =>
        start.Length >= 4 && start[0] == 0x7f && start[1] == (byte)'E' && start[2] == (byte)'L' && start[3] == (byte)'F';

    public void Dispose() => _data.Dispose();

    /// <summary>File bytes [offset, offset+size), bounds-checked.</summary>
    public ReadOnlySpan<byte> GetBytes(ulong offset, ulong size)
    {
        try
        {
            return _data.Span(offset, size);
        }
        catch (BadInputFormatException ex)
        {
            throw new BadInputFormatException($"{Name}: {ex.Message}");
        }
    }

    /// <summary>Copies up to <c>buffer.Length</c> file bytes at <paramref name="offset"/>; short at the end of the file.</summary>
    public int Read(ulong offset, Span<byte> buffer)
    {
        if (offset >= (ulong)Length) return 0;
        ulong n = Math.Min((ulong)buffer.Length, (ulong)Length - offset);
        GetBytes(offset, n).CopyTo(buffer);
        return (int)n;
    }

    /// <summary>The section's bytes (empty for SHT_NOBITS, e.g. .bss).</summary>
    public ReadOnlySpan<byte> GetSectionBytes(ElfSection section) =>
        section.Type == ElfSection.SHT_NOBITS ? ReadOnlySpan<byte>.Empty : GetBytes(section.Offset, section.Size);

    private BadInputFormatException Bad(string what) => new($"{Name}: {what}");

    // ---------------------------------------------------------------- header and program headers

    private ElfHeader ReadHeader()
    {
        if (_data.Length < 4 || !HasElfMagic(_data.Span(0, 4)))
            throw Bad("not an ELF file (no \\x7fELF magic).");
        // The magic is there but the file ends before the header does: say so, with the numbers.
        if (_data.Length < Ehdr64Size) throw Bad($"truncated: {_data.Length} bytes, an ELF header needs {Ehdr64Size}.");
        ElfLayout.CheckIdent(_data.Span(0, 16), Bad);

        var raw = ElfLayout.ParseHeader(_data.Span(0, Ehdr64Size));
        ushort phentsize = raw.ProgramHeaderEntrySize, shentsize = raw.SectionHeaderEntrySize;
        ushort phnum = (ushort)raw.ProgramHeaderCount, shnum = (ushort)raw.SectionHeaderCount, shstrndx = (ushort)raw.SectionNameTableIndex;
        ulong phoff = raw.ProgramHeaderOffset, shoff = raw.SectionHeaderOffset;

        uint realPhnum = phnum, realShnum = shnum, realShstrndx = shstrndx;
        // Extended numbering: the true counts live in section header 0 (gABI "Extended Section Header Numbering").
        bool needSection0 = phnum == 0xffff || (shnum == 0 && shoff != 0) || shstrndx == ElfSection.SHN_XINDEX;
        if (needSection0)
        {
            if (shoff == 0) throw Bad("extended numbering is used but there is no section header 0.");
            if (shentsize < Shdr64Size) throw Bad($"section header entry size {shentsize} is smaller than 64.");
            var s0 = _data.Length >= 0 && shoff <= (ulong)_data.Length && (ulong)_data.Length - shoff >= Shdr64Size
                ? _data.Span(shoff, Shdr64Size)
                : throw Bad($"section header 0 at 0x{shoff:x} lies outside the file.");
            if (phnum == 0xffff) realPhnum = U32(s0, 44);          // sh_info
            if (shnum == 0) realShnum = checked((uint)Math.Min(U64(s0, 32), uint.MaxValue)); // sh_size
            if (shstrndx == ElfSection.SHN_XINDEX) realShstrndx = U32(s0, 40); // sh_link
        }
        if (realPhnum > 0 && phentsize < Phdr64Size) throw Bad($"program header entry size {phentsize} is smaller than 56.");
        if (realShnum > 0 && shentsize < Shdr64Size) throw Bad($"section header entry size {shentsize} is smaller than 64.");
        if (realPhnum > 0) CheckTable(phoff, realPhnum, phentsize, "program header table");
        if (realShnum > 0) CheckTable(shoff, realShnum, shentsize, "section header table");
        if (realShnum > 0 && realShstrndx >= realShnum && realShstrndx != 0)
            throw Bad($"section name table index {realShstrndx} is not below the section count {realShnum}.");

        return raw with { ProgramHeaderCount = realPhnum, SectionHeaderCount = realShnum, SectionNameTableIndex = realShstrndx };
    }

    private void CheckTable(ulong offset, ulong count, ulong entrySize, string what)
    {
        ulong len = (ulong)_data.Length;
        // count * entrySize cannot overflow: count < 2^32, entrySize < 2^16.
        ulong size = count * entrySize;
        if (offset > len || size > len - offset)
            throw Bad($"truncated or corrupt: the {what} ({count} entries of {entrySize} bytes at 0x{offset:x}) runs past the end of the file (0x{len:x} bytes).");
    }

    private IReadOnlyList<ElfProgramHeader> ReadProgramHeaders()
    {
        var list = new ElfProgramHeader[Header.ProgramHeaderCount];
        for (int i = 0; i < list.Length; i++)
        {
            list[i] = ElfLayout.ParseProgramHeader(i, _data.Span(Header.ProgramHeaderOffset + (ulong)i * Header.ProgramHeaderEntrySize, Phdr64Size));
        }
        return list;
    }

    // ---------------------------------------------------------------- sections

    public IReadOnlyList<ElfSection> Sections
    {
        get
        {
            if (_sections is not null) return _sections;
            lock (_gate) return _sections ??= ReadSections();
        }
    }

    private IReadOnlyList<ElfSection> ReadSections()
    {
        uint n = Header.SectionHeaderCount;
        if (n == 0) return Array.Empty<ElfSection>();
        var raw = new (uint name, uint type, ulong flags, ulong addr, ulong off, ulong size, uint link, uint info, ulong align, ulong entsize)[n];
        for (int i = 0; i < n; i++)
        {
            var s = _data.Span(Header.SectionHeaderOffset + (ulong)i * Header.SectionHeaderEntrySize, Shdr64Size);
            raw[i] = (U32(s, 0), U32(s, 4), U64(s, 8), U64(s, 16), U64(s, 24), U64(s, 32), U32(s, 40), U32(s, 44), U64(s, 48), U64(s, 56));
        }
        ReadOnlySpan<byte> names = default;
        uint strndx = Header.SectionNameTableIndex;
        if (strndx != 0 && strndx < n && raw[strndx].type != ElfSection.SHT_NOBITS)
            names = GetBytes(raw[strndx].off, raw[strndx].size);
        var list = new ElfSection[n];
        for (int i = 0; i < n; i++)
        {
            var r = raw[i];
            string name = names.IsEmpty || i == 0 ? "" : ReadString(names, r.name, "section name");
            list[i] = new ElfSection(i, name, r.type, r.flags, r.addr, r.off, r.size, r.link, r.info, r.align, r.entsize);
        }
        return list;
    }

    public ElfSection? FindSection(string name)
    {
        foreach (var s in Sections)
            if (s.Name == name) return s;
        return null;
    }

    public ElfSection? FindSection(uint type)
    {
        foreach (var s in Sections)
            if (s.Type == type) return s;
        return null;
    }

    private ElfSection SectionAt(uint index, string why)
    {
        var sections = Sections;
        if (index >= sections.Count) throw Bad($"{why}: section index {index} does not exist ({sections.Count} sections).");
        return sections[(int)index];
    }

    // ---------------------------------------------------------------- symbols

    /// <summary>The static symbol table (.symtab), or null when the file is stripped.</summary>
    public ElfSymbolTable? SymbolTable => _symtab.Value;

    /// <summary>The dynamic symbol table (.dynsym), or null for static executables and cores.</summary>
    public ElfSymbolTable? DynamicSymbols => _dynsym.Value;

    private ElfSymbolTable? LoadSymbolTable(uint type)
    {
        var section = FindSection(type);
        if (section is null) return null;
        if (section.Type == ElfSection.SHT_NOBITS || section.Size == 0) return null;
        if (section.EntrySize != 0 && section.EntrySize != Sym64Size)
            throw Bad($"{section.Name}: symbol entry size {section.EntrySize} is not 24.");
        var strtab = SectionAt(section.Link, section.Name + " string table");
        // Validate both ranges once; the table then slices without further file checks.
        GetBytes(section.Offset, section.Size);
        GetSectionBytes(strtab);

        ElfSection? gnuHash = null, sysvHash = null, versym = null, verdef = null, verneed = null;
        foreach (var s in Sections)
        {
            if (s.Link != section.Index && s.Type != ElfSection.SHT_GNU_verdef && s.Type != ElfSection.SHT_GNU_verneed) continue;
            switch (s.Type)
            {
                case ElfSection.SHT_GNU_HASH: gnuHash ??= s; break;
                case ElfSection.SHT_HASH: sysvHash ??= s; break;
                case ElfSection.SHT_GNU_versym: versym ??= s; break;
                case ElfSection.SHT_GNU_verdef: verdef ??= s; break;
                case ElfSection.SHT_GNU_verneed: verneed ??= s; break;
            }
        }
        string?[]? versionNames = null;
        if (versym is not null && (verdef is not null || verneed is not null))
            versionNames = ReadVersionNames(verdef, verneed);
        return new ElfSymbolTable(this, section, strtab, section.Type == ElfSection.SHT_SYMTAB ? "symtab" : "dynsym",
            gnuHash, sysvHash, versionNames is null ? null : versym, versionNames);
    }

    /// <summary>Version index → name, from .gnu.version_d (definitions) and .gnu.version_r (needs).</summary>
    private string?[] ReadVersionNames(ElfSection? verdef, ElfSection? verneed)
    {
        var names = new Dictionary<int, string>();
        if (verdef is not null)
        {
            var data = GetSectionBytes(verdef);
            var str = GetSectionBytes(SectionAt(verdef.Link, "version definition strings"));
            ulong off = 0;
            for (uint i = 0; i < Math.Max(1u, verdef.Info) && i < 65536; i++)
            {
                // Elf64_Verdef: vd_version(2) vd_flags(2) vd_ndx(2) vd_cnt(2) vd_hash(4) vd_aux(4) vd_next(4)
                if (off > (ulong)data.Length || (ulong)data.Length - off < 20) throw Bad("version definition runs past its section.");
                var d = data.Slice((int)off);
                ushort ndx = U16(d, 4), cnt = U16(d, 6);
                uint aux = U32(d, 12), next = U32(d, 16);
                if (cnt > 0)
                {
                    ulong auxOff = off + aux;
                    if (auxOff > (ulong)data.Length || (ulong)data.Length - auxOff < 8) throw Bad("version definition aux runs past its section.");
                    names[ndx & 0x7fff] = ReadString(str, U32(data.Slice((int)auxOff), 0), "version name");
                }
                if (next == 0) break;
                off += next;
            }
        }
        if (verneed is not null)
        {
            var data = GetSectionBytes(verneed);
            var str = GetSectionBytes(SectionAt(verneed.Link, "version need strings"));
            ulong off = 0;
            for (uint i = 0; i < Math.Max(1u, verneed.Info) && i < 65536; i++)
            {
                // Elf64_Verneed: vn_version(2) vn_cnt(2) vn_file(4) vn_aux(4) vn_next(4)
                if (off > (ulong)data.Length || (ulong)data.Length - off < 16) throw Bad("version need runs past its section.");
                var n = data.Slice((int)off);
                ushort cnt = U16(n, 2);
                uint aux = U32(n, 8), next = U32(n, 12);
                ulong a = off + aux;
                for (int j = 0; j < cnt; j++)
                {
                    // Elf64_Vernaux: vna_hash(4) vna_flags(2) vna_other(2) vna_name(4) vna_next(4)
                    if (a > (ulong)data.Length || (ulong)data.Length - a < 16) throw Bad("version need aux runs past its section.");
                    var x = data.Slice((int)a);
                    names[U16(x, 6) & 0x7fff] = ReadString(str, U32(x, 8), "version name");
                    uint anext = U32(x, 12);
                    if (anext == 0) break;
                    a += anext;
                }
                if (next == 0) break;
                off += next;
            }
        }
        int max = names.Count == 0 ? 0 : names.Keys.Max();
        var result = new string?[max + 1];
        foreach (var (k, v) in names) result[k] = v;
        return result;
    }

    // ---------------------------------------------------------------- notes

    /// <summary>Notes from every PT_NOTE segment; when there are none (relocatable objects), from SHT_NOTE sections.</summary>
    public IEnumerable<ElfNote> GetNotes()
    {
        bool any = false;
        foreach (var p in ProgramHeaders)
        {
            if (p.Type != ElfProgramHeader.PT_NOTE) continue;
            any = true;
            foreach (var n in GetNotes(p)) yield return n;
        }
        if (any) yield break;
        foreach (var s in Sections)
        {
            if (s.Type != ElfSection.SHT_NOTE) continue;
            foreach (var n in ParseNotes(s.Offset, s.Size, ElfLayout.NoteAlign(s.AddressAlign))) yield return n;
        }
    }

    public IEnumerable<ElfNote> GetNotes(ElfProgramHeader segment) =>
        ParseNotes(segment.Offset, segment.FileSize, segment.Align == 8 ? 8u : 4u);

    private IEnumerable<ElfNote> ParseNotes(ulong offset, ulong size, uint align)
    {
        GetBytes(offset, size); // the whole range must be in the file
        ulong pos = 0;
        while (size - pos >= 12)
        {
            var n = ElfLayout.ParseNoteHeader(GetBytes(offset + pos, 12), pos, size, align, offset, Bad);
            string name = ElfLayout.NoteName(GetBytes(offset + n.NameOffset, n.NameSize));
            yield return new ElfNote(name, n.Type, offset + n.DescriptorOffset, n.DescriptorSize);
            pos = n.Next;
        }
    }

    /// <summary>The GNU build-id (NT_GNU_BUILD_ID), or null.</summary>
    public byte[]? BuildId => _buildId.Value;

    private byte[]? ReadBuildId()
    {
        foreach (var n in GetNotes())
            if (n.Type == ElfNote.NT_GNU_BUILD_ID && n.Name == "GNU" && n.DescriptorSize is > 0 and <= 64)
                return n.Descriptor(this).ToArray();
        return null;
    }

    /// <summary>The build-id as lowercase hex, as `file` and debuginfod spell it, or null.</summary>
    public string? BuildIdHex => BuildId is { } b ? Convert.ToHexString(b).ToLowerInvariant() : null;

    // ---------------------------------------------------------------- relocations, dynamic, addresses

    public IEnumerable<ElfRelocation> GetRelocations(ElfSection section)
    {
        bool rela = section.Type == ElfSection.SHT_RELA;
        if (!rela && section.Type != ElfSection.SHT_REL) throw new ArgumentException($"{section.Name} is not a SHT_REL or SHT_RELA section.", nameof(section));
        ulong entsize = rela ? 24u : 16u;
        GetBytes(section.Offset, section.Size);
        ulong count = section.Size / entsize;
        for (ulong i = 0; i < count; i++)
        {
            var r = GetBytes(section.Offset + i * entsize, entsize);
            ulong info = U64(r, 8);
            yield return new ElfRelocation(U64(r, 0), (uint)(info >> 32), (uint)info, rela ? (long)U64(r, 16) : 0);
        }
    }

    /// <summary>Entries of the PT_DYNAMIC segment (or .dynamic section), up to DT_NULL.</summary>
    public IEnumerable<ElfDynamicEntry> GetDynamicEntries()
    {
        ulong off = 0, size = 0;
        var seg = ProgramHeaders.FirstOrDefault(p => p.Type == ElfProgramHeader.PT_DYNAMIC);
        if (seg is not null) { off = seg.Offset; size = seg.FileSize; }
        else if (FindSection(ElfSection.SHT_DYNAMIC) is { } s) { off = s.Offset; size = s.Size; }
        if (size == 0) yield break;
        GetBytes(off, size);
        for (ulong i = 0; i + 16 <= size; i += 16)
        {
            var d = GetBytes(off + i, 16);
            long tag = (long)U64(d, 0);
            if (tag == ElfDynamicEntry.DT_NULL) yield break;
            yield return new ElfDynamicEntry(tag, U64(d, 8));
        }
    }

    /// <summary>The PT_LOAD segment whose file image holds <paramref name="fileOffset"/>, or null.</summary>
    public ElfProgramHeader? FindLoadSegmentByOffset(ulong fileOffset)
    {
        foreach (var p in ProgramHeaders)
            if (p.Type == ElfProgramHeader.PT_LOAD && p.ContainsOffset(fileOffset)) return p;
        return null;
    }

    /// <summary>The PT_LOAD segment whose memory image holds <paramref name="address"/>, or null.</summary>
    public ElfProgramHeader? FindLoadSegmentByAddress(ulong address)
    {
        foreach (var p in ProgramHeaders)
            if (p.Type == ElfProgramHeader.PT_LOAD && p.ContainsAddress(address)) return p;
        return null;
    }

    // ---------------------------------------------------------------- primitives

    internal string ReadString(ReadOnlySpan<byte> table, uint offset, string what)
    {
        if (offset >= (uint)table.Length) throw Bad($"{what} offset {offset} lies outside its string table ({table.Length} bytes).");
        var rest = table[(int)offset..];
        int nul = rest.IndexOf((byte)0);
        if (nul < 0) throw Bad($"{what} at offset {offset} is not NUL-terminated within its string table.");
        return Encoding.UTF8.GetString(rest[..nul]);
    }

    internal static ushort U16(ReadOnlySpan<byte> b, int o) => BinaryPrimitives.ReadUInt16LittleEndian(b[o..]);
    internal static uint U32(ReadOnlySpan<byte> b, int o) => BinaryPrimitives.ReadUInt32LittleEndian(b[o..]);
    internal static ulong U64(ReadOnlySpan<byte> b, int o) => BinaryPrimitives.ReadUInt64LittleEndian(b[o..]);

    public override string ToString() => $"{Name} ({Header.Type}, {ProgramHeaders.Count} program headers)";
}
