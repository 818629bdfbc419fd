using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Fuzz;

/// <summary>The ELF reader: every table it reads lazily, touched once.</summary>
internal static class ElfTarget
{
    private static readonly string[] Names = ["main", "malloc", "printf", "_start", "pslt_function", "fuzz_leaf", ""];

    public static void Run(byte[] input)
    {
        using var elf = ElfFile.FromBytes(input, "fuzz.elf");
        Touch(elf);
    }

    /// <summary>Also used by the BPF object target on the same file.</summary>
    internal static void Touch(ElfFile elf)
    {
        var sections = elf.Sections;
        foreach (var s in sections) _ = s.Name;
        foreach (var table in new[] { elf.DynamicSymbols, elf.SymbolTable })
        {
            if (table is null) continue;
            foreach (var symbol in table.All.Take(4096)) _ = symbol.Name;
            foreach (string n in Names)
            {
                table.Lookup(n);
                _ = table.FindAll(n).Count();
            }
            table.FindContaining(elf.Header.Entry);
            table.FindContaining(elf.Header.Entry + 0x40, strict: true);
        }
        foreach (var note in elf.GetNotes()) note.Descriptor(elf);
        _ = elf.BuildIdHex;
        _ = elf.GetDynamicEntries().Count();
        foreach (var s in sections)
        {
            if (s.Type is ElfSection.SHT_RELA or ElfSection.SHT_REL) _ = elf.GetRelocations(s).Count();
            elf.GetSectionBytes(s);
        }
        elf.FindLoadSegmentByAddress(elf.Header.Entry);
        elf.FindLoadSegmentByOffset(0);
    }
}
