using PSLinuxTrace.Engine.Memory;

namespace PSLinuxTrace.Engine.Elf;

/// <summary>
/// An ELF64 image as the loader (or the kernel, for the vDSO) laid it out in a process's memory, read
/// through an <see cref="IAddressSpace"/>: a live process, a core or a snapshot alike. What the loader
/// maps is read from memory (the ELF header, program headers, PT_DYNAMIC, PT_NOTE, and the dynamic
/// symbols DT_SYMTAB/DT_STRTAB/DT_GNU_HASH/DT_HASH point at), never section headers, which need not be
/// loaded. Every count, size and address taken from the image is checked before use: a bad one raises
/// <see cref="BadInputFormatException"/>; memory that is simply not there (a core that left it out)
/// gives null or an empty table instead.
/// </summary>
public sealed partial class ElfImage
{
    private const int MaxProgramHeaders = 1024, MaxDynamicEntries = 4096;
    // The ELF header and program headers sit in the image's first page(s); notes are a few hundred bytes.
    private const ulong MaxHeaderArea = 64 << 10, MaxNoteBytes = 64 << 10;

    private readonly IAddressSpace _memory;
    // The PT_LOAD segments' span in the file's own (link-time) addresses, the lower end page-aligned.
    private readonly ulong _low, _high;
    private readonly Lazy<IReadOnlyList<ElfDynamicEntry>> _dynamic;
    private readonly Lazy<byte[]?> _buildId;
    private readonly Lazy<ElfSymbolTable?> _dynamicSymbols;

    public string Name { get; }
    /// <summary>Where the image's first byte (its ELF header, file offset 0) is mapped.</summary>
    public ulong BaseAddress { get; }
    public ElfHeader Header { get; }
    public IReadOnlyList<ElfProgramHeader> ProgramHeaders { get; }
    /// <summary>What was added to the image's link-time addresses: memory address = file address + LoadBias.</summary>
    public ulong LoadBias { get; }
    /// <summary>The memory the PT_LOAD segments cover: [Start, End).</summary>
    public ulong Start => unchecked(LoadBias + _low);
    public ulong End => unchecked(LoadBias + _high);

    private ElfImage(IAddressSpace memory, ulong baseAddress, string name, ElfHeader header, ElfProgramHeader[] phdrs)
    {
        _memory = memory;
        BaseAddress = baseAddress;
        Name = name;
        Header = header;
        ProgramHeaders = phdrs;
        var loads = phdrs.Where(p => p.Type == ElfProgramHeader.PT_LOAD && p.MemorySize > 0).ToArray();
        // The segment that maps file offset 0 says where the image starts (as the loader computes l_addr).
        var first = loads.FirstOrDefault(p => p.Offset == 0) ?? throw Bad("no PT_LOAD segment maps the ELF header (file offset 0).");
        LoadBias = unchecked(baseAddress - (first.VirtualAddress & ~0xfffUL));
        _low = loads.Min(p => p.VirtualAddress) & ~0xfffUL;
        _high = loads.Max(p => p.VirtualAddress + p.MemorySize);
        if (loads.Any(p => p.VirtualAddress + p.MemorySize < p.VirtualAddress) || _high - _low > 1UL << 40)
            throw Bad("its PT_LOAD segments wrap around or span more than 1 TiB.");
        _dynamic = new(ReadDynamicEntries);
        _buildId = new(ReadBuildId);
        _dynamicSymbols = new(LoadDynamicSymbols);
    }

    /// <summary>
    /// Opens the image whose ELF header is mapped at <paramref name="baseAddress"/>. BadInputFormatException
    /// when no header is readable there, or when the header or program headers break the format.
    /// </summary>
    public static ElfImage FromAddressSpace(IAddressSpace memory, ulong baseAddress, string name)
    {
        BadInputFormatException Bad(string what) => new($"{name} at 0x{baseAddress:x}: {what}");
        Span<byte> eh = stackalloc byte[ElfLayout.Ehdr64Size];
        if (!memory.TryRead(baseAddress, eh)) throw Bad("no ELF header is readable there.");
        ElfLayout.CheckIdent(eh[..16], Bad);
        var header = ElfLayout.ParseHeader(eh);
        uint count = header.ProgramHeaderCount;
        if (count == 0xffff) throw Bad("extended program header numbering (PN_XNUM) cannot be read from memory.");
        if (count is 0 or > MaxProgramHeaders) throw Bad($"{count} program headers (expected 1 to {MaxProgramHeaders}).");
        if (header.ProgramHeaderEntrySize < ElfLayout.Phdr64Size) throw Bad($"program header entry size {header.ProgramHeaderEntrySize} is smaller than 56.");
        ulong tableSize = count * (ulong)header.ProgramHeaderEntrySize, phoff = header.ProgramHeaderOffset;
        if (phoff > MaxHeaderArea || tableSize > MaxHeaderArea - phoff || baseAddress + phoff + tableSize < baseAddress)
            throw Bad($"the program header table ({count} x {header.ProgramHeaderEntrySize} bytes at offset 0x{phoff:x}) is not in the image's first 64 KiB.");
        var table = memory.TryReadArray(baseAddress + phoff, (int)tableSize) ?? throw Bad("its program headers are not readable.");
        var phdrs = new ElfProgramHeader[count];
        for (int i = 0; i < phdrs.Length; i++)
            phdrs[i] = ElfLayout.ParseProgramHeader(i, table.AsSpan(i * header.ProgramHeaderEntrySize, ElfLayout.Phdr64Size));
        return new ElfImage(memory, baseAddress, name, header, phdrs);
    }

    private BadInputFormatException Bad(string what) => new($"{Name} at 0x{BaseAddress:x}: {what}");

    /// <summary>True when [<paramref name="fileAddress"/>, +<paramref name="length"/>) lies inside the image's PT_LOAD span.</summary>
    public bool Contains(ulong fileAddress, ulong length = 1) =>
        fileAddress >= _low && fileAddress <= _high && length <= _high - fileAddress;

    /// <summary>
    /// <paramref name="length"/> bytes at <paramref name="fileAddress"/> (a link-time address of the image),
    /// or null when that memory is not readable. BadInputFormatException when the range lies outside the image.
    /// </summary>
    public byte[]? ReadAt(ulong fileAddress, ulong length)
    {
        if (!Contains(fileAddress, length) || length > int.MaxValue)
            throw Bad($"0x{fileAddress:x}+0x{length:x} lies outside its loaded segments (0x{_low:x}-0x{_high:x}).");
        return _memory.TryReadArray(unchecked(fileAddress + LoadBias), (int)length);
    }

    /// <summary>The PT_DYNAMIC entries up to DT_NULL; empty for a static image or when they are not readable.</summary>
    public IReadOnlyList<ElfDynamicEntry> DynamicEntries => _dynamic.Value;

    private IReadOnlyList<ElfDynamicEntry> ReadDynamicEntries()
    {
        var seg = ProgramHeaders.FirstOrDefault(p => p.Type == ElfProgramHeader.PT_DYNAMIC);
        if (seg is null || seg.MemorySize < 16) return Array.Empty<ElfDynamicEntry>();
        var bytes = ReadAt(seg.VirtualAddress, Math.Min(seg.MemorySize, MaxDynamicEntries * 16UL) & ~15UL);
        var list = new List<ElfDynamicEntry>();
        for (int i = 0; bytes is not null && i + 16 <= bytes.Length; i += 16)
        {
            long tag = (long)ElfFile.U64(bytes, i);
            if (tag == ElfDynamicEntry.DT_NULL) break;
            list.Add(new ElfDynamicEntry(tag, ElfFile.U64(bytes, i + 8)));
        }
        return list;
    }

    /// <summary>
    /// A d_ptr value of a dynamic entry as a file address. ld.so adds the load bias to most of them in
    /// place (glibc's elf_get_dynamic_info, ADJUST_DYN_INFO); the vDSO's and a not yet relocated image's
    /// are as linked. Whichever reading lands inside the image is taken, the relocated one first.
    /// </summary>
    internal ulong FileAddressOf(ulong pointer, string tag)
    {
        ulong unbiased = unchecked(pointer - LoadBias);
        if (Contains(unbiased)) return unbiased;
        if (Contains(pointer)) return pointer;
        throw Bad($"{tag} 0x{pointer:x} points outside the image.");
    }

    /// <summary>The GNU build-id (NT_GNU_BUILD_ID) from the PT_NOTE segments, or null.</summary>
    public byte[]? BuildId => _buildId.Value;

    /// <summary>The build-id as lowercase hex, as `file` and debuginfod spell it, or null.</summary>
    public string? BuildIdHex => BuildId is { } b ? Convert.ToHexString(b).ToLowerInvariant() : null;

    private byte[]? ReadBuildId()
    {
        foreach (var p in ProgramHeaders)
        {
            if (p.Type != ElfProgramHeader.PT_NOTE || p.FileSize == 0 || p.FileSize > MaxNoteBytes) continue;
            if (ReadAt(p.VirtualAddress, p.FileSize) is not { } notes) continue;
            ulong pos = 0, size = (ulong)notes.Length;
            while (size - pos >= 12)
            {
                var n = ElfLayout.ParseNoteHeader(notes.AsSpan((int)pos, 12), pos, size, ElfLayout.NoteAlign(p.Align), p.VirtualAddress, Bad);
                var desc = notes.AsSpan((int)n.DescriptorOffset, (int)n.DescriptorSize);
                if (n.Type == ElfNote.NT_GNU_BUILD_ID && n.DescriptorSize is > 0 and <= 64
                    && ElfLayout.NoteName(notes.AsSpan((int)n.NameOffset, (int)n.NameSize)) == "GNU")
                    return desc.ToArray();
                pos = n.Next;
            }
        }
        return null;
    }

    public override string ToString() => $"{Name} at 0x{BaseAddress:x} (bias 0x{LoadBias:x}, {ProgramHeaders.Count} program headers)";
}
