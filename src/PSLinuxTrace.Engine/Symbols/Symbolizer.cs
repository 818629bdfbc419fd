using Microsoft.Extensions.Logging;
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

    public Symbolizer(ILogger log)
    {
        _log = log;
        _files = new ElfFileCache(log);
    }

    /// <summary>ELF files parsed so far: one per distinct file (and version of it on disk), however many maps use it.</summary>
    public int FilesOpened => _files.FilesOpened;

    /// <summary>
    /// The modules of one process: <paramref name="layout"/> (NT_FILE, or <see cref="ModuleLayout.FromProcess"/>)
    /// over <paramref name="memory"/>, which supplies the build-ids and the vDSO's image. Files that do
    /// not match the process's build-ids are refused, each with a line to <paramref name="warn"/>.
    /// </summary>
    public ModuleMap MapModules(IAddressSpace memory, ModuleLayout layout, ModuleSearchOptions? search = null,
        Action<string>? warn = null, CancellationToken cancel = default) =>
        new ModuleResolver(_files, _log, memory, search ?? new ModuleSearchOptions(), warn ?? (_ => { })).Build(layout, cancel);

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

    /// <summary>Unwound frames as <see cref="StackFrame"/>s: symbol+offset and module for each (null where nothing names it).</summary>
    public StackFrame[] Symbolize(ModuleMap map, IReadOnlyList<UnwoundFrame> frames)
    {
        var result = new List<StackFrame>(frames.Count);
        for (int k = 0; k < frames.Count; k++)
        {
            var f = frames[k];
            // Name the call, not the instruction after it (a noreturn call can end a function); frame 0
            // and a frame a signal interrupted hold the pc of their own instruction.
            ulong lookup = k == 0 || frames[k - 1].IsSignalFrame || f.IsSignalFrame ? f.InstructionPointer : f.InstructionPointer - 1;
            var module = map.Find(lookup);
            var (name, offset) = module is null ? (null, 0UL) : Name(module, lookup, f.InstructionPointer);
            // Issue 15 adds here: the module's DWARF turns one unwound frame into its inlined frames plus
            // the real one, each with File, Line and Column.
            result.Add(new StackFrame(result.Count, f.InstructionPointer, f.StackPointer, name, offset, module?.Path, f.Method.ToString()));
        }
        return result.ToArray();
    }

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

    private void Damaged(MappedModule module, string what, Exception ex) =>
        _log.LogWarning("{Path}: unreadable {What} in memory ({Message}); using frame pointers there.", module.Path, what, ex.Message);

    public void Dispose() => _files.Dispose();
}
