using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Unwind;

namespace PSLinuxTrace.Engine.Symbols;

/// <summary>
/// The symbolizer every stack goes through (Read-CoreDump, snapshots read back, live stacks, syscall
/// stacks): maps a process's modules over its address space, unwinds a thread's stack through that
/// address space with each module's CFI, and names each frame from the module's symbols. It owns the
/// caches (ELF files by path and modification time, their CFI and symbol indexes), shared by every
/// map it makes: one symbolizer per cmdlet invocation parses libc once, however many processes or
/// cores it reads. Not thread-safe: use it from one thread at a time. Dispose closes the files, so
/// module maps it made are done with then too.
/// </summary>
public sealed class Symbolizer : IDisposable
{
    private readonly ILogger _log;
    private readonly ElfFileCache _files;
    private readonly DebuginfodClient? _ownDebuginfod;

    /// <summary>A symbolizer that asks the debuginfod servers DEBUGINFOD_URLS names (if any) for what is missing here.</summary>
    public Symbolizer(ILogger log) : this(log, DebuginfodClient.FromEnvironment(log)) => _ownDebuginfod = _debuginfod;

    /// <summary>A symbolizer that asks <paramref name="debuginfod"/> (null: no server) for missing debug files and executables; the caller keeps and disposes it.</summary>
    public Symbolizer(ILogger log, DebuginfodClient? debuginfod)
    {
        _log = log;
        _debuginfod = debuginfod;
        _files = new ElfFileCache(log, debuginfod);
    }

    private readonly DebuginfodClient? _debuginfod;

    /// <summary>ELF files parsed so far: one per distinct file (and version of it on disk), however many maps use it.</summary>
    public int FilesOpened => _files.FilesOpened;

    /// <summary>
    /// The modules of one process: <paramref name="layout"/> (NT_FILE, or <see cref="ModuleLayout.FromProcess"/>)
    /// over <paramref name="memory"/>, which supplies the build-ids and the vDSO's image. Files that do
    /// not match the process's build-ids are refused, each with a line to <paramref name="warn"/>.
    /// </summary>
    public ModuleMap MapModules(IAddressSpace memory, ModuleLayout layout, ModuleSearchOptions? search = null,
        Action<string>? warn = null, CancellationToken cancel = default) =>
        new ModuleResolver(_files, _log, memory, search ?? new ModuleSearchOptions(), warn ?? (_ => { }), cancel).Build(layout);

    /// <summary>
    /// Unwinds one thread from its registers: CFI where the pc's module has it, the rbp chain elsewhere.
    /// The stack is read through <paramref name="stack"/> when given (copied stacks over the live
    /// process, say), else through the map's address space.
    /// </summary>
    public List<UnwoundFrame> Unwind(ModuleMap map, in UserRegsX64 registers, int maxFrames = 256, IAddressSpace? stack = null)
    {
        var unwinder = new Unwinder(stack ?? map.Memory,
            pc => map.Find(pc) is { LoadBiasKnown: true } m ? m.UnwindInfo(_files, (what, ex) => Damaged(m, what, ex)) : null);
        return unwinder.Unwind(Unwinder.FromUserRegs(registers), maxFrames);
    }

    /// <summary>
    /// Unwound frames as <see cref="StackFrame"/>s, as gdb's bt shows them: symbol+offset and module for
    /// each (null where nothing names it), file:line:column from the module's DWARF (its separate debug
    /// file's, else its own), and one more frame per inlined call, innermost first, flagged IsInlined
    /// (see <see cref="SourceFrameMapper"/> for how those are named and numbered). A module's DWARF is
    /// opened the first time a frame lands in it, and kept for every later map.
    /// </summary>
    public StackFrame[] Symbolize(ModuleMap map, IReadOnlyList<UnwoundFrame> frames)
    {
        var result = new List<StackFrame>(frames.Count);
        var tailCalls = new TailCallFinder(map, _files, _log);
        for (int k = 0; k < frames.Count; k++)
        {
            var f = frames[k];
            // Name the call, not the instruction after it (a noreturn call can end a function); frame 0
            // and a frame a signal interrupted hold the pc of their own instruction.
            bool isCall = !(k == 0 || frames[k - 1].IsSignalFrame || f.IsSignalFrame);
            var (entry, names) = Add(result, map, f.InstructionPointer, f.StackPointer, f.Method, isCall);
            // gdb's tail-call frames: between this frame and a caller that called something else.
            if (k + 1 < frames.Count && !f.IsSignalFrame && !frames[k + 1].IsSignalFrame && entry is { } calleeEntry)
                foreach (var step in tailCalls.Between(calleeEntry, names, frames[k + 1].InstructionPointer))
                    Add(result, map, step.ReturnAddress, frames[k + 1].StackPointer, UnwindMethod.TailCall, isCall: true);
        }
        return result.ToArray();
    }

    /// <summary>
    /// Adds the frames of one pc (the inlined ones, then the real one); returns the entry (a memory address)
    /// of the real function and the names it goes by, for the tail-call search.
    /// </summary>
    private (ulong? Entry, string[] Names) Add(List<StackFrame> result, ModuleMap map, ulong pc, ulong sp, UnwindMethod method, bool isCall)
    {
        ulong lookup = isCall ? pc - 1 : pc;
        var module = map.Find(lookup);
        var (name, offset) = module is null ? (null, 0UL) : Name(module, lookup, pc);
        var source = module is null ? [] : SourceFrames(module, lookup);
        var real = new StackFrame(0, pc, sp, name, offset, module?.Path, method.ToString());
        if (method == UnwindMethod.TailCall && source.Count > 1)
        {
            // gdb shows a tail-call frame as one frame named after the innermost function at its pc, with that
            // function's line, and does not list its inlined callers. Inlined, it has no symbol to count from.
            SourceFrameMapper.Add(result, real, [source[0]], module!.LoadBias);
            result[^1] = result[^1] with { Symbol = source[0].Function ?? result[^1].Symbol, Offset = 0 };
        }
        else SourceFrameMapper.Add(result, real, source, module?.LoadBias ?? 0);
        var outer = source.Count > 0 ? source[^1] : null;
        ulong? entry = outer?.EntryAddress is { } e ? e + module!.LoadBias : name is not null ? pc - offset : null;
        string[] names = new[] { outer?.Function, outer?.Name, name }.OfType<string>().Distinct().ToArray();
        return (entry, names);
    }

    /// <summary>
    /// Unwound frames named from each module's own file only (its .symtab, else .dynsym; the vDSO's image):
    /// no debug file, no DWARF, no inlined or tail-call frames. What a machine's debug information is cannot
    /// change these names, which a crash signature needs to group one crash across hosts; nor is any DWARF opened.
    /// </summary>
    public StackFrame[] SymbolizeFromModules(ModuleMap map, IReadOnlyList<UnwoundFrame> frames)
    {
        var result = new StackFrame[frames.Count];
        for (int k = 0; k < frames.Count; k++)
        {
            var f = frames[k];
            bool isCall = !(k == 0 || frames[k - 1].IsSignalFrame || f.IsSignalFrame);
            ulong lookup = isCall ? f.InstructionPointer - 1 : f.InstructionPointer;
            var module = map.Find(lookup);
            string? name = null;
            ulong offset = 0;
            if (module is { LoadBiasKnown: true })
            {
                try
                {
                    // Strictly: a static function a stripped .dynsym lacks stays unnamed, not named after its neighbour.
                    if (module.OwnSymbols?.FindContaining(lookup - module.LoadBias, strict: true) is { Name.Length: > 0 } sym)
                        (name, offset) = (sym.Name, f.InstructionPointer - (sym.Value + module.LoadBias));
                }
                catch (BadInputFormatException) { }
            }
            result[k] = new StackFrame(k, f.InstructionPointer, f.StackPointer, name, offset, module?.Path, f.Method.ToString());
        }
        return result;
    }

    /// <summary>Files whose DWARF was opened for source lines so far (each once per symbolizer).</summary>
    public int DwarfFilesLoaded => _files.DwarfFilesLoaded;

    /// <summary>The DWARF opened so far (for tests of laziness and sharing).</summary>
    internal IEnumerable<Dwarf.DwarfSourceInfo> LoadedDwarf => _files.LoadedDwarf;

    /// <summary><see cref="Unwind"/> then <see cref="Symbolize"/>.</summary>
    public StackFrame[] Backtrace(ModuleMap map, in UserRegsX64 registers, int maxFrames = 256, IAddressSpace? stack = null) =>
        Symbolize(map, Unwind(map, registers, maxFrames, stack));

    /// <summary>The symbol that holds <paramref name="lookup"/>, and <paramref name="pc"/>'s offset from its start.</summary>
    private (string? Name, ulong Offset) Name(MappedModule module, ulong lookup, ulong pc)
    {
        if (!module.LoadBiasKnown) return (null, 0);
        try
        {
            if (module.Symbols?.FindContaining(lookup - module.LoadBias) is { Name.Length: > 0 } sym)
                return (sym.Name, pc - (sym.Value + module.LoadBias));
        }
        catch (BadInputFormatException ex)
        {
            _log.LogDebug("{Path}: damaged symbol table: {Message}", module.Path, ex.Message);
        }
        return (null, 0);
    }

    /// <summary>The DWARF frames of <paramref name="lookup"/> (a memory address) in <paramref name="module"/>; none without DWARF or where it is damaged.</summary>
    private IReadOnlyList<Dwarf.SourceFrame> SourceFrames(MappedModule module, ulong lookup)
    {
        if (!module.LoadBiasKnown || module.SourceInfo(_files) is not { } dwarf) return [];
        try
        {
            return dwarf.Lookup(lookup - module.LoadBias);
        }
        catch (BadInputFormatException ex)
        {
            if (!module.SourceDamageReported)
                _log.LogWarning("{Path}: unreadable DWARF in {Debug} ({Message}); some frames have no source lines.", module.Path, dwarf.Name, ex.Message);
            module.SourceDamageReported = true;
            return [];
        }
    }

    private void Damaged(MappedModule module, string what, Exception ex) =>
        _log.LogWarning("{Path}: unreadable {What} in memory ({Message}); using frame pointers there.", module.Path, what, ex.Message);

    public void Dispose()
    {
        _files.Dispose();
        _ownDebuginfod?.Dispose();
    }
}
