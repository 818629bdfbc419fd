namespace PSLinuxTrace.Engine.Dwarf;

// The DWARF 5 standard's names and values (DWARF Debugging Information Format Version 5, §7),
// with the GNU extensions gcc and binutils emit (include/dwarf2.def in binutils-gdb).

/// <summary>DW_TAG_* values this reader acts on.</summary>
internal static class DwTag
{
    public const ushort EntryPoint = 0x03, LexicalBlock = 0x0b, CompileUnit = 0x11, InlinedSubroutine = 0x1d,
        Subprogram = 0x2e, PartialUnit = 0x3c, ImportedUnit = 0x3d, TypeUnit = 0x41, CallSite = 0x48, SkeletonUnit = 0x4a,
        GnuCallSite = 0x4109;
}

/// <summary>DW_AT_* values this reader acts on.</summary>
internal static class DwAt
{
    public const ushort Sibling = 0x01, Name = 0x03, StmtList = 0x10, LowPc = 0x11, HighPc = 0x12, CompDir = 0x1b,
        AbstractOrigin = 0x31, Declaration = 0x3c, Specification = 0x47, EntryPc = 0x52, Ranges = 0x55,
        CallColumn = 0x57, CallFile = 0x58, CallLine = 0x59, LinkageName = 0x6e, StrOffsetsBase = 0x72,
        AddrBase = 0x73, RnglistsBase = 0x74, DwoName = 0x76, CallReturnPc = 0x7d, CallOrigin = 0x7f,
        CallTailCall = 0x82, MipsLinkageName = 0x2007, GnuTailCall = 0x2115,
        GnuDwoName = 0x2130, GnuRangesBase = 0x2132, GnuAddrBase = 0x2133;
}

/// <summary>DW_FORM_* values (all of DWARF 5 plus the GNU ones).</summary>
internal static class DwForm
{
    public const ushort Addr = 0x01, Block2 = 0x03, Block4 = 0x04, Data2 = 0x05, Data4 = 0x06, Data8 = 0x07,
        String = 0x08, Block = 0x09, Block1 = 0x0a, Data1 = 0x0b, Flag = 0x0c, Sdata = 0x0d, Strp = 0x0e,
        Udata = 0x0f, RefAddr = 0x10, Ref1 = 0x11, Ref2 = 0x12, Ref4 = 0x13, Ref8 = 0x14, RefUdata = 0x15,
        Indirect = 0x16, SecOffset = 0x17, Exprloc = 0x18, FlagPresent = 0x19, Strx = 0x1a, Addrx = 0x1b,
        RefSup4 = 0x1c, StrpSup = 0x1d, Data16 = 0x1e, LineStrp = 0x1f, RefSig8 = 0x20, ImplicitConst = 0x21,
        Loclistx = 0x22, Rnglistx = 0x23, RefSup8 = 0x24, Strx1 = 0x25, Strx2 = 0x26, Strx3 = 0x27, Strx4 = 0x28,
        Addrx1 = 0x29, Addrx2 = 0x2a, Addrx3 = 0x2b, Addrx4 = 0x2c,
        GnuAddrIndex = 0x1f01, GnuStrIndex = 0x1f02, GnuRefAlt = 0x1f20, GnuStrpAlt = 0x1f21;
}

/// <summary>DW_UT_* unit types (DWARF 5 §7.5.1).</summary>
internal static class DwUt
{
    public const byte Compile = 1, Type = 2, Partial = 3, Skeleton = 4, SplitCompile = 5, SplitType = 6;
}

/// <summary>Line-number program opcodes and content types (DWARF 5 §6.2.5, §7.22).</summary>
internal static class DwLine
{
    // Standard opcodes.
    public const byte Copy = 1, AdvancePc = 2, AdvanceLine = 3, SetFile = 4, SetColumn = 5, NegateStmt = 6,
        SetBasicBlock = 7, ConstAddPc = 8, FixedAdvancePc = 9, SetPrologueEnd = 10, SetEpilogueBegin = 11, SetIsa = 12;
    // Extended opcodes.
    public const byte EndSequence = 1, SetAddress = 2, DefineFile = 3, SetDiscriminator = 4;
    // DW_LNCT_* (v5 directory and file name entry formats).
    public const ushort Path = 1, DirectoryIndex = 2, Timestamp = 3, Size = 4, Md5 = 5;
}

/// <summary>DW_RLE_* range list entry kinds (DWARF 5 §7.25).</summary>
internal static class DwRle
{
    public const byte EndOfList = 0, BaseAddressx = 1, StartxEndx = 2, StartxLength = 3, OffsetPair = 4,
        BaseAddress = 5, StartEnd = 6, StartLength = 7;
}
