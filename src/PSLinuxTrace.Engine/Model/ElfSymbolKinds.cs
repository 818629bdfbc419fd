namespace PSLinuxTrace.Engine.Model;

/// <summary>An ELF symbol's kind (st_info's type, elf.h STT_*): an output property of ProcSymbol, so it lives with the model.</summary>
public enum ElfSymbolKind : byte
{
    NoType = 0,
    Object = 1,
    Function = 2,
    Section = 3,
    File = 4,
    Common = 5,
    Tls = 6,
    GnuIFunc = 10,
}

/// <summary>An ELF symbol's binding (st_info's binding, elf.h STB_*).</summary>
public enum ElfSymbolBinding : byte
{
    Local = 0,
    Global = 1,
    Weak = 2,
    GnuUnique = 10,
}
