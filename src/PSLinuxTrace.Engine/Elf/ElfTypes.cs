using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Elf;

/// <summary>e_type.</summary>
public enum ElfType : ushort
{
    None = 0,
    Relocatable = 1,
    Executable = 2,
    SharedObject = 3,
    Core = 4,
}

/// <summary>The ELF file header (Elf64_Ehdr), with extended numbering (PN_XNUM, SHN_XINDEX) already resolved.</summary>
public sealed record ElfHeader(
    ElfType Type,
    ushort Machine,
    uint Version,
    byte OsAbi,
    ulong Entry,
    ulong ProgramHeaderOffset,
    ulong SectionHeaderOffset,
    uint Flags,
    ushort HeaderSize,
    ushort ProgramHeaderEntrySize,
    uint ProgramHeaderCount,
    ushort SectionHeaderEntrySize,
    uint SectionHeaderCount,
    uint SectionNameTableIndex)
{
    public const ushort EM_X86_64 = 62;
    public const ushort EM_AARCH64 = 183;
}

/// <summary>One program header (Elf64_Phdr).</summary>
public sealed record ElfProgramHeader(
    int Index,
    uint Type,
    uint Flags,
    ulong Offset,
    ulong VirtualAddress,
    ulong PhysicalAddress,
    ulong FileSize,
    ulong MemorySize,
    ulong Align)
{
    public const uint PT_NULL = 0, PT_LOAD = 1, PT_DYNAMIC = 2, PT_INTERP = 3, PT_NOTE = 4, PT_SHLIB = 5, PT_PHDR = 6, PT_TLS = 7;
    public const uint PT_GNU_EH_FRAME = 0x6474e550, PT_GNU_STACK = 0x6474e551, PT_GNU_RELRO = 0x6474e552, PT_GNU_PROPERTY = 0x6474e553;
    public const uint PF_X = 1, PF_W = 2, PF_R = 4;

    /// <summary>True when <paramref name="address"/> lies in [VirtualAddress, VirtualAddress + MemorySize).</summary>
    public bool ContainsAddress(ulong address) => address >= VirtualAddress && address - VirtualAddress < MemorySize;

    /// <summary>True when the file offset lies in [Offset, Offset + FileSize).</summary>
    public bool ContainsOffset(ulong offset) => offset >= Offset && offset - Offset < FileSize;

    /// <summary>"r-x" style flags, as /proc/PID/maps and readelf show them.</summary>
    public string Permissions => $"{((Flags & PF_R) != 0 ? 'r' : '-')}{((Flags & PF_W) != 0 ? 'w' : '-')}{((Flags & PF_X) != 0 ? 'x' : '-')}";

    public string TypeName => Type switch
    {
        PT_NULL => "NULL", PT_LOAD => "LOAD", PT_DYNAMIC => "DYNAMIC", PT_INTERP => "INTERP", PT_NOTE => "NOTE",
        PT_SHLIB => "SHLIB", PT_PHDR => "PHDR", PT_TLS => "TLS", PT_GNU_EH_FRAME => "GNU_EH_FRAME",
        PT_GNU_STACK => "GNU_STACK", PT_GNU_RELRO => "GNU_RELRO", PT_GNU_PROPERTY => "GNU_PROPERTY",
        _ => $"0x{Type:x}",
    };
}

/// <summary>One section header (Elf64_Shdr) with its name resolved.</summary>
public sealed record ElfSection(
    int Index,
    string Name,
    uint Type,
    ulong Flags,
    ulong Address,
    ulong Offset,
    ulong Size,
    uint Link,
    uint Info,
    ulong AddressAlign,
    ulong EntrySize)
{
    public const uint SHT_NULL = 0, SHT_PROGBITS = 1, SHT_SYMTAB = 2, SHT_STRTAB = 3, SHT_RELA = 4, SHT_HASH = 5,
        SHT_DYNAMIC = 6, SHT_NOTE = 7, SHT_NOBITS = 8, SHT_REL = 9, SHT_DYNSYM = 11, SHT_INIT_ARRAY = 14,
        SHT_FINI_ARRAY = 15, SHT_SYMTAB_SHNDX = 18;
    public const uint SHT_GNU_HASH = 0x6ffffff6, SHT_GNU_verdef = 0x6ffffffd, SHT_GNU_verneed = 0x6ffffffe, SHT_GNU_versym = 0x6fffffff;
    public const ulong SHF_WRITE = 1, SHF_ALLOC = 2, SHF_EXECINSTR = 4, SHF_TLS = 0x400;
    public const ushort SHN_UNDEF = 0, SHN_ABS = 0xfff1, SHN_COMMON = 0xfff2, SHN_XINDEX = 0xffff, SHN_LORESERVE = 0xff00;
}

/// <summary>
/// One symbol. <see cref="Version"/> is the symbol version name (GLIBC_2.2.5) when the table has
/// version information; <see cref="IsDefaultVersion"/> is false for hidden, non-default versions
/// (the "@" rather than "@@" ones that only old binaries bind to).
/// </summary>
public sealed record ElfSymbol(
    string Name,
    ulong Value,
    ulong Size,
    ElfSymbolKind Kind,
    ElfSymbolBinding Binding,
    ushort SectionIndex,
    int Index,
    string? Version,
    bool IsDefaultVersion = true)
{
    /// <summary>False for imports (SHN_UNDEF): their value is not an address in this file.</summary>
    public bool IsDefined => SectionIndex != ElfSection.SHN_UNDEF;

    /// <summary>st_other's visibility (0 default, 1 internal, 2 hidden, 3 protected).</summary>
    public byte Visibility { get; init; }
}

/// <summary>One relocation (Elf64_Rel or Elf64_Rela).</summary>
public readonly record struct ElfRelocation(ulong Offset, uint SymbolIndex, uint Type, long Addend);

/// <summary>One entry of the dynamic section (Elf64_Dyn).</summary>
public readonly record struct ElfDynamicEntry(long Tag, ulong Value)
{
    public const long DT_NULL = 0, DT_NEEDED = 1, DT_HASH = 4, DT_STRTAB = 5, DT_SYMTAB = 6, DT_STRSZ = 10, DT_SYMENT = 11,
        DT_SONAME = 14, DT_DEBUG = 21, DT_GNU_HASH = 0x6ffffef5, DT_VERSYM = 0x6ffffff0, DT_FLAGS_1 = 0x6ffffffb;
}

/// <summary>
/// One note (Elf64_Nhdr + name + descriptor). The descriptor is addressed by file offset so that
/// notes of multi-GiB cores cost nothing until read.
/// </summary>
public readonly record struct ElfNote(string Name, uint Type, ulong DescriptorOffset, ulong DescriptorSize)
{
    public const uint NT_GNU_BUILD_ID = 3;
    public const uint NT_PRSTATUS = 1, NT_PRFPREG = 2, NT_PRPSINFO = 3, NT_TASKSTRUCT = 4, NT_AUXV = 6,
        NT_SIGINFO = 0x53494749, NT_FILE = 0x46494c45, NT_X86_XSTATE = 0x202;

    public ReadOnlySpan<byte> Descriptor(ElfFile file) => file.GetBytes(DescriptorOffset, DescriptorSize);
}
