using System.Text;

namespace PSLinuxTrace.Engine.Elf;

/// <summary>
/// The parts of ELF64 parsing that a file (<see cref="ElfFile"/>) and an image in memory
/// (<see cref="ElfImage"/>) share: the identification, the header fields, a program header, a note.
/// Each takes bytes the caller has already bounds-checked, and raises BadInputFormatException through
/// <c>bad</c> for values that break the format.
/// </summary>
internal static class ElfLayout
{
    public const int Ehdr64Size = 64, Phdr64Size = 56;

    /// <summary>Checks e_ident (16 bytes): the magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT.</summary>
    public static void CheckIdent(ReadOnlySpan<byte> ident, Func<string, BadInputFormatException> bad)
    {
        if (!ElfFile.HasElfMagic(ident) || ident.Length < 16) throw bad("not an ELF file (no \\x7fELF magic).");
        switch (ident[4])
        {
            case 1: throw bad("32-bit ELF (ELFCLASS32) is not supported; PSLinuxTrace reads ELF64 files only.");
            case 2: break;
            default: throw bad($"unknown ELF class {ident[4]}.");
        }
        switch (ident[5])
        {
            case 1: break;
            case 2: throw bad("big-endian ELF (ELFDATA2MSB) is not supported; PSLinuxTrace reads little-endian files only.");
            default: throw bad($"unknown ELF data encoding {ident[5]}.");
        }
        if (ident[6] != 1) throw bad($"unknown ELF ident version {ident[6]}.");
    }

    /// <summary>The Elf64_Ehdr fields of <paramref name="h"/> (64 bytes) as they stand: extended numbering is the caller's.</summary>
    public static ElfHeader ParseHeader(ReadOnlySpan<byte> h) => new(
        (ElfType)ElfFile.U16(h, 16), ElfFile.U16(h, 18), ElfFile.U32(h, 20), h[7],
        ElfFile.U64(h, 24), ElfFile.U64(h, 32), ElfFile.U64(h, 40), ElfFile.U32(h, 48),
        ElfFile.U16(h, 52), ElfFile.U16(h, 54), ElfFile.U16(h, 56), ElfFile.U16(h, 58), ElfFile.U16(h, 60), ElfFile.U16(h, 62));

    /// <summary>One Elf64_Phdr (56 bytes).</summary>
    public static ElfProgramHeader ParseProgramHeader(int index, ReadOnlySpan<byte> p) =>
        new(index, ElfFile.U32(p, 0), ElfFile.U32(p, 4), ElfFile.U64(p, 8), ElfFile.U64(p, 16), ElfFile.U64(p, 24),
            ElfFile.U64(p, 32), ElfFile.U64(p, 40), ElfFile.U64(p, 48));

    /// <summary>
    /// The note at <paramref name="pos"/> of a note area of <paramref name="size"/> bytes (at
    /// <paramref name="areaStart"/>, for messages), given its first 12 bytes (namesz, descsz, type) in
    /// <paramref name="header"/>: the name's and the descriptor's places in the area, and where the next
    /// note starts. A note that runs past the area is bad.
    /// </summary>
    public static (uint Type, ulong NameOffset, uint NameSize, ulong DescriptorOffset, ulong DescriptorSize, ulong Next) ParseNoteHeader(
        ReadOnlySpan<byte> header, ulong pos, ulong size, uint align, ulong areaStart, Func<string, BadInputFormatException> bad)
    {
        uint namesz = ElfFile.U32(header, 0), descsz = ElfFile.U32(header, 4), type = ElfFile.U32(header, 8);
        ulong nameOff = pos + 12;
        ulong descOff = AlignUp(nameOff + namesz, align);
        ulong end = AlignUp(descOff + descsz, align);
        if (descOff + descsz > size) throw bad($"note at 0x{areaStart + pos:x} (name {namesz} bytes, descriptor {descsz} bytes) runs past its segment.");
        return (type, nameOff, namesz, descOff, descsz, Math.Min(end, size));
    }

    /// <summary>A note's name: its bytes up to the first NUL.</summary>
    public static string NoteName(ReadOnlySpan<byte> nameBytes)
    {
        int nul = nameBytes.IndexOf((byte)0);
        return Encoding.ASCII.GetString(nul >= 0 ? nameBytes[..nul] : nameBytes);
    }

    /// <summary>PT_NOTE's alignment as the notes use it: 8 for 8-aligned segments (GNU property notes), else 4.</summary>
    public static uint NoteAlign(ulong segmentAlign) => segmentAlign == 8 ? 8u : 4u;

    private static ulong AlignUp(ulong v, uint a) => (v + a - 1) & ~(ulong)(a - 1);
}
