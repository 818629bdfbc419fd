using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Unwind;

namespace PSLinuxTrace.Engine.Symbols;

/// <summary>
/// One module of a process (a mapped ELF file, or the vDSO): where it is, the build-id its image in
/// memory carries, the file on this machine that matches it, its separate debug file, and its load
/// bias. Symbols and CFI come from the matching file (the debug file's .symtab first), or for the vDSO
/// from its image in memory. Made by <see cref="Symbolizer.MapModules"/>; valid while that symbolizer is.
/// </summary>
public sealed class MappedModule
{
    internal MappedModule(string path, IReadOnlyList<ModuleMapping> mappings)
    {
        Path = path;
        Mappings = mappings;
        Start = mappings.Min(m => m.Start);
        End = mappings.Max(m => m.End);
    }

    /// <summary>The path as the process mapped it (" (deleted)" kept), or "[vdso]".</summary>
    public string Path { get; }
    /// <summary>From its lowest mapping's start to its highest mapping's end.</summary>
    public ulong Start { get; }
    public ulong End { get; }
    public IReadOnlyList<ModuleMapping> Mappings { get; }
    public bool IsVdso => Path == ModuleLayout.VdsoPath;
    public bool IsExecutable { get; internal set; }

    /// <summary>The GNU build-id of the image in the process's memory (null when the memory lacks its notes).</summary>
    public string? BuildId { get; internal set; }
    /// <summary>The file used for symbols and CFI (SysRoot, -ExecutablePath or the mapped path), or null when none matched.</summary>
    public string? LocalPath { get; internal set; }
    public string? LocalBuildId { get; internal set; }
    /// <summary>The separate debug file (.symtab, .debug_frame; DWARF for issue 15), or null.</summary>
    public string? DebugPath { get; internal set; }
    /// <summary>True when <see cref="LocalPath"/> is the file the process mapped (the build-ids agree, or one side has none), and for the vDSO.</summary>
    public bool Matches { get; internal set; }
    /// <summary>memory address = file address + LoadBias; meaningful when <see cref="LoadBiasKnown"/>.</summary>
    public ulong LoadBias { get; internal set; }
    public bool LoadBiasKnown { get; internal set; }

    internal ElfFile? Local { get; set; }
    internal ElfFile? Debug { get; set; }
    /// <summary>The image read from memory: the vDSO's source of symbols and CFI.</summary>
    internal ElfImage? Image { get; set; }

    public bool Contains(ulong address) => address >= Start && address < End;

    private UnwindModule? _unwind;
    private bool _unwindLoaded;

    /// <summary>CFI and bias for the unwinder: the file's own CFI, then its debug file's (.debug_frame there covers what .eh_frame lacks).</summary>
    internal UnwindModule UnwindInfo(ElfFileCache cache, Action<string, Exception> onBadImage)
    {
        if (_unwindLoaded) return _unwind!;
        CallFrameInfo? cfi = null;
        if (Image is not null)
        {
            try { cfi = CallFrameInfo.FromImage(Image); }
            catch (BadInputFormatException ex) { onBadImage("call frame information", ex); }
        }
        else
        {
            cfi = CallFrameInfo.Combine(cache.CfiOf(Local), cache.CfiOf(Debug));
        }
        _unwind = new UnwindModule(cfi, LoadBias);
        _unwindLoaded = true;
        return _unwind;
    }

    /// <summary>The table frames are named from: the debug file's .symtab, the file's .symtab, its .dynsym; the vDSO's dynamic symbols.</summary>
    internal ElfSymbolTable? Symbols => Image is not null ? Image.DynamicSymbols : Debug?.SymbolTable ?? Local?.SymbolTable ?? Local?.DynamicSymbols;

    public override string ToString() => $"{Path} 0x{Start:x}-0x{End:x} bias 0x{LoadBias:x}{(BuildId is null ? "" : " " + BuildId)}{(LocalPath is null ? " (no file)" : "")}";
}

/// <summary>The modules of one process's address space, in the order the process mapped them.</summary>
public sealed class ModuleMap
{
    internal ModuleMap(Memory.IAddressSpace memory, IReadOnlyList<MappedModule> modules)
    {
        Memory = memory;
        Modules = modules;
    }

    /// <summary>The address space the modules were read from (and stacks are unwound through by default).</summary>
    public Memory.IAddressSpace Memory { get; }
    public IReadOnlyList<MappedModule> Modules { get; }
    public MappedModule? Executable => Modules.FirstOrDefault(m => m.IsExecutable);

    /// <summary>
    /// The module one of whose mappings holds <paramref name="address"/>; failing that, the first whose range
    /// (lowest start to highest end) does. Mappings first: a file mapped in pieces all over the address
    /// space (the .NET runtime's double-mapped JIT memory, /memfd:doublemapper) spans other modules' ranges.
    /// </summary>
    public MappedModule? Find(ulong address)
    {
        foreach (var m in Modules)
            foreach (var mapping in m.Mappings)
                if (address >= mapping.Start && address < mapping.End) return m;
        foreach (var m in Modules)
            if (m.Contains(address)) return m;
        return null;
    }
}
