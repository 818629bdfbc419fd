using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>The DWARF sections the source-location reader uses.</summary>
public enum DwarfSectionKind
{
    Info, Abbrev, Line, LineStr, Str, StrOffsets, Addr, Ranges, Rnglists, Aranges,
}

/// <summary>
/// The DWARF sections of one ELF file (a module, or its separate debug file), each read when first
/// asked for. Plain sections are read in place from the mapped file (no copy); compressed ones
/// (SHF_COMPRESSED zlib or zstd, legacy .zdebug_*) are inflated on first use, and only as far as
/// a reader asks through <see cref="Prefix"/>. The
/// <see cref="FromBytes"/> form takes section contents directly: the entry point for fuzzing and
/// for debug info that does not come from a file.
/// </summary>
public sealed class DwarfSections
{
    private static readonly string[] Names =
    [
        ".debug_info", ".debug_abbrev", ".debug_line", ".debug_line_str", ".debug_str",
        ".debug_str_offsets", ".debug_addr", ".debug_ranges", ".debug_rnglists", ".debug_aranges",
    ];

    private readonly ElfFile? _elf;
    private readonly ElfSection?[] _inPlace = new ElfSection?[Names.Length];
    private readonly byte[]?[] _bytes = new byte[]?[Names.Length];
    private readonly Lazy<InflatingSection>?[] _compressed = new Lazy<InflatingSection>?[Names.Length];

    /// <summary>The file the sections come from ("&lt;bytes&gt;" for <see cref="FromBytes"/>).</summary>
    public string Name { get; }

    private DwarfSections(ElfFile? elf, string name)
    {
        _elf = elf;
        Name = name;
    }

    /// <summary>The sections of <paramref name="elf"/>, which must stay open while they are used.</summary>
    public static DwarfSections FromElf(ElfFile elf)
    {
        var s = new DwarfSections(elf, elf.Name);
        for (int k = 0; k < Names.Length; k++)
        {
            var section = elf.FindSection(Names[k]) ?? elf.FindSection(".z" + Names[k][1..]);
            if (section is null || section.Type == ElfSection.SHT_NOBITS || section.Size == 0) continue;
            if (ElfSectionDecompressor.IsCompressed(section))
                s._compressed[k] = new Lazy<InflatingSection>(() => ElfSectionDecompressor.Open(elf, section));
            else
            {
                elf.GetSectionBytes(section); // the whole range must lie in the file, checked once
                s._inPlace[k] = section;
            }
        }
        return s;
    }

    /// <summary>
    /// Sections given by name (".debug_info", ".debug_line", ...; names not listed in
    /// <see cref="DwarfSectionKind"/> are ignored). The arrays are used as they are, not copied.
    /// </summary>
    public static DwarfSections FromBytes(IReadOnlyDictionary<string, byte[]> sections, string name = "<bytes>")
    {
        var s = new DwarfSections(null, name);
        for (int k = 0; k < Names.Length; k++)
            if (sections.TryGetValue(Names[k], out var bytes) && bytes.Length > 0)
                s._bytes[k] = bytes;
        return s;
    }

    /// <summary>True when the file has the section (compressed or not).</summary>
    public bool Has(DwarfSectionKind kind) => _inPlace[(int)kind] is not null || _bytes[(int)kind] is not null || _compressed[(int)kind] is not null;

    /// <summary>
    /// The section's (uncompressed) bytes, empty when the file lacks it. Throws
    /// BadInputFormatException when a compressed section does not inflate.
    /// </summary>
    public ReadOnlySpan<byte> this[DwarfSectionKind kind] => Prefix(kind, ulong.MaxValue);

    /// <summary>
    /// The section's bytes from its start through at least offset <paramref name="end"/> (all of
    /// them when it is shorter): a compressed section is inflated no further than that. Readers
    /// slice what they read from this span, so a damaged length still fails as out of bounds.
    /// </summary>
    public ReadOnlySpan<byte> Prefix(DwarfSectionKind kind, ulong end)
    {
        if (_inPlace[(int)kind] is { } section) return _elf!.GetSectionBytes(section);
        if (_bytes[(int)kind] is { } bytes) return bytes;
        return _compressed[(int)kind] is { } lazy ? lazy.Value.Prefix(end) : ReadOnlySpan<byte>.Empty;
    }

    /// <summary>The section's full (uncompressed) size, without inflating it; 0 when the file lacks it.</summary>
    public ulong SizeOf(DwarfSectionKind kind)
    {
        if (_inPlace[(int)kind] is { } section) return section.Size;
        if (_bytes[(int)kind] is { } bytes) return (ulong)bytes.Length;
        return _compressed[(int)kind] is { } lazy ? (ulong)lazy.Value.Size : 0;
    }

    /// <summary>The section's ELF name, for messages.</summary>
    public static string SectionName(DwarfSectionKind kind) => Names[(int)kind];
}
