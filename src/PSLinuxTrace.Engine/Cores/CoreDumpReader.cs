using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Managed;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Symbols;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>Options of Read-CoreDump.</summary>
public sealed record CoreDumpOptions
{
    /// <summary>The executable to use instead of the path the core names.</summary>
    public string? ExecutablePath { get; init; }
    /// <summary>A copy of the target's filesystem: mapped files (and /usr/lib/debug) are looked up there first.</summary>
    public string? SysRoot { get; init; }
    public bool Backtraces { get; init; } = true;
    public int MaxFrames { get; init; } = 256;
    /// <summary>Managed frames for cores of .NET processes (ClrMD over the runtime's DAC); false: native frames only.</summary>
    public bool ManagedFrames { get; init; } = true;
    /// <summary>Called while a compressed core is decompressed: compressed bytes read so far, and the file's size.</summary>
    public Action<long, long>? DecompressionProgress { get; init; }
}

/// <summary>
/// Turns a core file into a <see cref="CoreDump"/>: the notes, the modules mapped and matched with
/// the files on this machine (or under SysRoot) by the build-ids the core's own memory holds, every
/// thread's stack unwound and symbolized by the shared <see cref="Symbolizer"/>, and the output built
/// by <see cref="CoreDumpBuilder"/>. One reader keeps its symbolizer's caches for its lifetime: piping
/// many cores of one program through one Read-CoreDump parses libc and the program once.
/// </summary>
public sealed class CoreDumpReader : IDisposable
{
    private readonly ILogger _log;
    private readonly Symbolizer _symbolizer;

    /// <summary>A reader whose symbolizer asks the debuginfod servers of DEBUGINFOD_URLS, if any, for missing files.</summary>
    public CoreDumpReader(ILogger log)
    {
        _log = log;
        _symbolizer = new Symbolizer(log);
    }

    /// <summary>A reader whose symbolizer asks <paramref name="debuginfod"/> (null: no server); the caller disposes it.</summary>
    public CoreDumpReader(ILogger log, Dwarf.DebuginfodClient? debuginfod)
    {
        _log = log;
        _symbolizer = new Symbolizer(log, debuginfod);
    }

    /// <summary>
    /// The name of PSLinuxTrace's own notes: type 1 holds a launch snapshot's restore state, type 2
    /// ("PSLinuxTrace 0.1.0") is on every core Save-ProcessSnapshot writes, so Producer says who wrote it.
    /// </summary>
    public const string SnapshotNoteName = "PSLINUXTRACE";
    public const uint RestoreStateNoteType = 1, ProducerNoteType = 2;

    /// <summary>The symbolizer this reader's cores share (its caches, for tests).</summary>
    internal Symbolizer Symbolizer => _symbolizer;

    public void Dispose() => _symbolizer.Dispose();

    public CoreDump Read(string path, CoreDumpOptions? options = null, CancellationToken cancel = default)
    {
        using var core = CoreFile.Open(path, _log, cancel, options?.DecompressionProgress);
        return Read(core, path, options, cancel);
    }

    internal CoreDump Read(CoreFile core, string path, CoreDumpOptions? options = null, CancellationToken cancel = default)
    {
        options ??= new CoreDumpOptions();
        var warnings = new List<string>();
        void Warn(string message)
        {
            warnings.Add(message);
            _log.LogWarning("{Message}", message);
        }

        _log.LogInformation("{Path}: {Threads} thread(s), {Segments} memory segment(s), {Files} mapped file(s).",
            path, core.Threads.Count, core.Segments.Count, core.Files.Count);
        if (core.IsTruncated)
            Warn($"{path} is truncated: {core.MissingBytes} bytes of the process's memory are missing (the dump was cut short or the disk filled up).");

        var search = new ModuleSearchOptions { SysRoot = options.SysRoot, ExecutablePath = options.ExecutablePath };
        var map = _symbolizer.MapModules(core.Memory, CoreModules.Layout(core), search, Warn, cancel);
        CoreModules.SpliceLocalFiles(core, map);
        var threads = ReadThreads(core, path, map, options, Warn, cancel);
        string? signature = CrashSignature.Build(CoreDumpBuilder.SignalName(core), CrashingFrames(core, map, threads), map);
        return CoreDumpBuilder.Build(core, path, map, threads, signature, warnings.ToArray());
    }

    /// <summary>
    /// The crashing thread's frames for its signature, named from each module's own symbols only (never a debug
    /// file or DWARF), with or without -NoBacktrace: the signature of one crash of one build is then the same
    /// on every host, whatever debug information each has.
    /// </summary>
    private StackFrame[] CrashingFrames(CoreFile core, ModuleMap map, CoreThread[] threads)
    {
        if (threads.FirstOrDefault(t => t.IsCrashingThread) is not { } crashed) return [];
        var unwound = _symbolizer.Unwind(map, core.Threads[Array.IndexOf(threads, crashed)].Status.Registers,
            CrashSignature.DyingSearchDepth + CrashSignature.FrameCount);
        return _symbolizer.SymbolizeFromModules(map, unwound);
    }

    private CoreThread[] ReadThreads(CoreFile core, string path, ModuleMap map, CoreDumpOptions options, Action<string> warn, CancellationToken cancel)
    {
        var threads = new CoreThread[core.Threads.Count];
        var registers = core.Threads.Select(CoreDumpBuilder.Registers).ToArray();
        using var managed = options.Backtraces && options.ManagedFrames ? OpenManaged(core, path, map, registers, options, warn) : null;
        int processSignal = core.Threads[0].Status.CurSig;
        for (int i = 0; i < threads.Length; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var t = core.Threads[i];
            var frames = options.Backtraces
                ? StackInterleaver.Backtrace(_symbolizer, map, registers[i], t.Status.Pid, options.MaxFrames, null, managed)
                : Array.Empty<StackFrame>();
            int sig = t.Status.CurSig;
            threads[i] = new CoreThread(t.Status.Pid, i == 0 && processSignal != 0, sig != 0 ? Signals.Name(sig) : null, sig,
                registers[i], frames);
        }
        return threads;
    }

    /// <summary>ClrMD over the core when it is of a .NET process (null otherwise, and ClrMD stays unloaded).</summary>
    private IManagedFrameSource? OpenManaged(CoreFile core, string path, ModuleMap map, X64Registers[] registers, CoreDumpOptions options, Action<string> warn)
    {
        if (ManagedStacks.FindRuntime(map) is null) return null;
        CoreModules.SpliceManagedAssemblies(core, map, options.SysRoot);
        var byTid = new Dictionary<int, X64Registers>();
        for (int i = 0; i < registers.Length; i++) byTid.TryAdd(core.Threads[i].Status.Pid, registers[i]);
        return ManagedStacks.TryOpen(path, core.PsInfo?.Pid ?? core.Threads[0].Status.Pid, map, core.Memory, byTid, options.SysRoot, warn, _log);
    }
}
