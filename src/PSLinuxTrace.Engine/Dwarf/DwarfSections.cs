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
/// (SHF_COMPRESSED zlib or zstd, legacy .zdebug_*) are inflated once, on first use. The
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
    private readonly Lazy<byte[]>?[] _bytes = new Lazy<byte[]>?[Names.Length];

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
                s._bytes[k] = new Lazy<byte[]>(() => ElfSectionDecompressor.GetUncompressedBytes(elf, section));
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
            {
                var b = bytes;
                s._bytes[k] = new Lazy<byte[]>(() => b);
            }
        return s;
    }

    /// <summary>True when the file has the section (compressed or not).</summary>
    public bool Has(DwarfSectionKind kind) => _inPlace[(int)kind] is not null || _bytes[(int)kind] is not null;

    /// <summary>
    /// The section's (uncompressed) bytes, empty when the file lacks it. Throws
    /// BadInputFormatException when a compressed section does not inflate.
    /// </summary>
    public ReadOnlySpan<byte> this[DwarfSectionKind kind]
    {
        get
        {
            if (_inPlace[(int)kind] is { } section) return _elf!.GetSectionBytes(section);
            return _bytes[(int)kind] is { } lazy ? lazy.Value : ReadOnlySpan<byte>.Empty;
        }
    }

    /// <summary>The section's ELF name, for messages.</summary>
    public static string SectionName(DwarfSectionKind kind) => Names[(int)kind];
}
