using Microsoft.Extensions.Logging;
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

    public CoreDumpReader(ILogger log)
    {
        _log = log;
        _symbolizer = new Symbolizer(log);
    }

    /// <summary>
    /// The name of PSLinuxTrace's own notes: type 1 holds a launch snapshot's restore state, type 2
    /// ("PSLinuxTrace 0.1.0") is on every core Save-ProcessSnapshot writes, so Producer says who wrote it.
    /// </summary>
    public const string SnapshotNoteName = "PSLINUXTRACE";
    public const uint RestoreStateNoteType = 1, ProducerNoteType = 2;

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
        var threads = ReadThreads(core, map, options, cancel);
        string? signature = CrashSignature.Build(CoreDumpBuilder.SignalName(core), CrashingFrames(core, map, threads), map);
        return CoreDumpBuilder.Build(core, path, map, threads, signature, warnings.ToArray());
    }

    /// <summary>The crashing thread's frames for its signature: those already unwound, or (with -NoBacktrace) the top ones unwound now.</summary>
    private StackFrame[] CrashingFrames(CoreFile core, ModuleMap map, CoreThread[] threads)
    {
        if (threads.FirstOrDefault(t => t.IsCrashingThread) is not { } crashed) return [];
        if (crashed.Frames.Length > 0) return crashed.Frames;
        return _symbolizer.Backtrace(map, core.Threads[Array.IndexOf(threads, crashed)].Status.Registers,
            CrashSignature.DyingSearchDepth + CrashSignature.FrameCount);
    }

    private CoreThread[] ReadThreads(CoreFile core, ModuleMap map, CoreDumpOptions options, CancellationToken cancel)
    {
        var threads = new CoreThread[core.Threads.Count];
        int processSignal = core.Threads[0].Status.CurSig;
        for (int i = 0; i < threads.Length; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var t = core.Threads[i];
            var frames = options.Backtraces ? _symbolizer.Backtrace(map, t.Status.Registers, options.MaxFrames) : Array.Empty<StackFrame>();
            int sig = t.Status.CurSig;
            threads[i] = new CoreThread(t.Status.Pid, i == 0 && processSignal != 0, sig != 0 ? Signals.Name(sig) : null, sig,
                CoreDumpBuilder.Registers(t), frames);
        }
        return threads;
    }
}
