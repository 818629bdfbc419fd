using System.Buffers.Binary;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Bpf;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Text;
using BpfCalls = PSLinuxTrace.Engine.Interop.Bpf;

namespace PSLinuxTrace.Engine.Exec;

/// <summary>
/// The eBPF exec watcher: loads src/bpf/exec.bpf.o as a <see cref="BpfCollection"/> (maps created,
/// map relocations applied, programs verified and attached to the execve/execveat tracepoints), reads
/// the ring buffer on its own thread, joins each entry record with its exit record, and writes
/// <see cref="ExecEvent"/>s to a bounded channel. The contract callers rely on: Stop (and Dispose)
/// ends the reader thread, then detaches and closes every BPF program, map, link and fd, so nothing
/// stays in the kernel; the counters stay readable (as of that moment) through <see cref="Summary"/>.
/// </summary>
public sealed class ExecWatcher : IDisposable
{
    public const string ObjectResource = "exec.bpf.o";
    // How long an entry waits for its exit record before it is written with Result null. An exec can
    // take seconds on a loaded machine (loading the binary), so this is generous; the execs behind
    // one whose exit never comes (a caller killed mid-exec) wait that long too, to keep time order.
    private static readonly TimeSpan ExitWait = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan BatchDelay = TimeSpan.FromMilliseconds(20);

    private readonly ILogger _log;
    private readonly ExecWatchOptions _options;
    private readonly BpfCollection _bpf;
    private readonly BpfMap _counters;
    private readonly RingBufferReader _ring;
    private readonly Glob[]? _names;
    private readonly long _bootToRealtimeNs;
    private readonly Channel<ExecEvent> _channel = Channel.CreateBounded<ExecEvent>(new BoundedChannelOptions(65536) { SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _stop = new();
    private Thread? _thread;
    private ulong _lostReported;
    private long _emitted;
    private readonly Stopwatch _clock = new();

    /// <summary>The kernel ids of the loaded programs (for `bpftool prog show id N`).</summary>
    public IReadOnlyList<uint> ProgramIds { get; }

    private ExecWatcher(ExecWatchOptions options, ILogger log)
    {
        _options = options;
        _log = log;
        if (options.BufferSize < 4096 || (options.BufferSize & (options.BufferSize - 1)) != 0)
            throw new ArgumentException($"The buffer size must be a power of two of at least 4096 bytes; got {options.BufferSize}.");
        _names = options.Name?.Select(n => new Glob(n)).ToArray();
        _bootToRealtimeNs = LibC.ClockNs(LibC.CLOCK_REALTIME) - LibC.ClockNs(LibC.CLOCK_BOOTTIME);
        // The capabilities first: without them tracefs is unreadable too, and its error would hide the real need.
        if (Tracing.SyscallTraceEngines.MissingCapabilities() is { } missing)
            throw new TargetPermissionDeniedException($"Watch-Exec's eBPF programs need {missing} (or root), which this process does not have.", missing);
        Tracefs.Root();
        byte[] config = ExecRecords.BuildConfig(Btf.LoadVmlinux(), options);
        _bpf = BpfCollection.Load(ObjectResource, new Dictionary<string, uint>
        {
            ["events"] = (uint)options.BufferSize,
            ["scratch"] = (uint)Math.Max(1, PossibleCpus.Count),   // indexed by CPU id
        }, log);
        try
        {
            _counters = _bpf.Map("counters");
            _bpf.Map("config", BpfCalls.BPF_MAP_TYPE_ARRAY, 4, ExecRecords.ConfigSize).Update(new byte[4], config);
            _ring = _bpf.OpenRingBuffer("events");
            // Attached only once every program passed the verifier (which can take a while under load), and the
            // exit programs before the entry ones: every exec whose entry is recorded then has its exit recorded.
            _bpf.Attach(p => p.Tracepoint!.Contains("/sys_exit_", StringComparison.Ordinal) ? 0 : 1);
            ProgramIds = _bpf.ProgramIds;
        }
        catch
        {
            _bpf.Dispose();
            throw;
        }
    }

    /// <summary>Loads and attaches; throws typed engine exceptions (PermissionDenied naming CAP_BPF, UnsupportedFeature, ...).</summary>
    public static ExecWatcher Open(ExecWatchOptions options, ILogger log) => new(options, log);

    /// <summary>The events, as the reader thread joins them; completes on Count, Timeout, Stop/Dispose, or with the error that ended the watch.</summary>
    public ChannelReader<ExecEvent> Events => _channel.Reader;

    /// <summary>Starts the reader thread (once).</summary>
    public ChannelReader<ExecEvent> Start(CancellationToken cancel = default)
    {
        if (_thread is not null) return _channel.Reader;
        if (cancel.CanBeCanceled) cancel.Register(() => { try { _stop.Cancel(); } catch (ObjectDisposedException) { } });
        _clock.Start();
        _thread = new Thread(Run) { IsBackground = true, Name = "Watch-Exec ring buffer" };
        _thread.Start();
        return _channel.Reader;
    }

    /// <summary>Ring buffer reservation failures counted by the BPF programs (events the kernel could not hand over).</summary>
    public ulong LostEvents => _finalCounters?.Lost ?? ReadCounter(0);

    /// <summary>argv/envp strings the kernel could not read (page not present); those events are marked Truncated.</summary>
    public ulong FaultedReads => _finalCounters?.Faulted ?? ReadCounter(1);

    // The counters as they were when Stop closed the maps.
    private (ulong Lost, ulong Faulted)? _finalCounters;
    private readonly object _stopGate = new();

    public ExecWatchSummary Summary => new(Interlocked.Read(ref _emitted), LostEvents, FaultedReads, _clock.Elapsed);

    private ulong ReadCounter(int index)
    {
        byte[] key = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(key, index);
        return BinaryPrimitives.ReadUInt64LittleEndian(_counters.Lookup(key));
    }

    private void Run()
    {
        var queue = new ExecEventQueue(ExitWait);
        var ready = new List<ExecEvent>();
        TimeSpan lastLostCheck = TimeSpan.Zero;
        Exception? error = null;
        RingBufferReader.RecordHandler handler = rec => OnRecord(rec, queue);
        CancellationToken stop = _stop.Token;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                if (_options.Timeout is { } t && _clock.Elapsed >= t) break;
                // The kernel wakes us for the first record after we caught up. Letting records
                // gather for a few milliseconds first turns a wake-up per exec (two records, and a
                // cross-CPU wake-up costs 55-105 us here) into one per batch, at the price of that latency.
                if (_ring.Wait(100)) stop.WaitHandle.WaitOne(BatchDelay);
                _ring.Consume(handler);
                TimeSpan now = _clock.Elapsed;
                queue.Release(now, all: false, ready);
                if (!Emit(ready, stop)) break;
                if (now - lastLostCheck > TimeSpan.FromMilliseconds(250)) { CheckLost(); lastLostCheck = now; }
            }
            // Ended by -Timeout or -Count (not by Stop): hand over what is already in the ring and
            // the entries still waiting for an exit (in order, result unknown). After Stop nobody
            // reads any more, so skip it.
            if (!stop.IsCancellationRequested)
            {
                _ring.Consume(handler);
                queue.Release(_clock.Elapsed, all: true, ready);
                Emit(ready, stop);
            }
            CheckLost();
        }
        catch (OperationCanceledException) { }
        catch (Exception ex) { error = ex; }
        _channel.Writer.TryComplete(error);
    }

    private void CheckLost()
    {
        ulong lost = LostEvents;
        if (lost > _lostReported)
        {
            _log.LogWarning("{New} exec record(s) lost because the ring buffer was full ({Total} in total); use -BufferSize to grow it (now {Size} bytes).",
                lost - _lostReported, lost, _options.BufferSize);
            _lostReported = lost;
        }
    }

    /// <summary>Writes ready events (already in time order); false once Count is reached.</summary>
    private bool Emit(List<ExecEvent> ready, CancellationToken stop)
    {
        foreach (ExecEvent e in ready)
        {
            if (_options.Count > 0 && Interlocked.Read(ref _emitted) >= _options.Count) { ready.Clear(); return false; }
            // A full channel (the pipeline is slower than the execs) blocks here; the ring then
            // fills and the kernel counts what it cannot hold, which CheckLost reports.
            while (!_channel.Writer.TryWrite(e))
                _channel.Writer.WaitToWriteAsync(stop).AsTask().GetAwaiter().GetResult();
            Interlocked.Increment(ref _emitted);
        }
        ready.Clear();
        return !(_options.Count > 0 && Interlocked.Read(ref _emitted) >= _options.Count);
    }

    private void OnRecord(ReadOnlySpan<byte> rec, ExecEventQueue queue)
    {
        if (rec.Length < 4) return;
        uint kind = ExecRecords.Kind(rec);
        if (kind == ExecRecords.RecEnter && rec.Length > ExecRecords.HeaderSize)
        {
            ExecEvent e = ExecRecords.ParseEnter(rec, _bootToRealtimeNs, _options.IncludeEnvironment);
            if (_names is not null && !MatchesName(e.Filename)) return;
            queue.Enter(e, _clock.Elapsed);
        }
        else if (kind == ExecRecords.RecExit && rec.Length >= ExecRecords.ExitSize)
        {
            var (pid, tid, ret) = ExecRecords.ParseExit(rec);
            queue.Exit(pid, tid, ret);
        }
    }

    private bool MatchesName(string filename)
    {
        string last = filename[(filename.LastIndexOf('/') + 1)..];
        foreach (Glob g in _names!)
            if (g.IsMatch(g.Pattern.Contains('/') ? filename : last)) return true;
        return false;
    }

    /// <summary>The inode number of a process's pid namespace (stat of /proc/PID/ns/pid).</summary>
    public static uint PidNamespaceOf(int pid)
    {
        string link = $"/proc/{pid}/ns/pid";
        try
        {
            string? target = new FileInfo(link).LinkTarget;
            if (target is null && !Directory.Exists($"/proc/{pid}")) throw new ProcessNotFoundException(pid);
            // The link reads as nothing when readlink(2) fails with EACCES (ptrace_may_access in proc_ns_get_link).
            if (target is null) throw Access.AccessDiagnosis.Explain(pid, $"reading {link}", Errno.EACCES);
            // "pid:[4026531836]"
            if (target is not null && target.StartsWith("pid:[", StringComparison.Ordinal) && target.EndsWith(']'))
                return uint.Parse(target[5..^1], System.Globalization.CultureInfo.InvariantCulture);
            throw new BadInputFormatException($"Unexpected target of {link}: {target}");
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ProcessNotFoundException(pid);
        }
        catch (UnauthorizedAccessException)
        {
            throw Access.AccessDiagnosis.Explain(pid, $"reading {link}", Errno.EACCES);
        }
        catch (IOException) when (!Directory.Exists($"/proc/{pid}"))
        {
            throw new ProcessNotFoundException(pid);
        }
    }

    /// <summary>
    /// Stops the reader thread (the channel completes), then closes every BPF object: after Stop
    /// returns, nothing of the watch is left in the kernel. Safe to call more than once.
    /// </summary>
    public void Stop()
    {
        try { _stop.Cancel(); } catch (ObjectDisposedException) { }
        lock (_stopGate)
        {
            if (_finalCounters is not null) return;
            // The reader wakes at least every 100 ms (ring wait) and its channel writes are cancellable.
            if (_thread is not null && !_thread.Join(TimeSpan.FromSeconds(10)))
            {
                // Unmapping the ring under a thread that reads it would crash the process: leave the
                // objects to the process's exit instead.
                _log.LogWarning("The Watch-Exec reader thread did not stop within 10 s; its BPF objects stay open until this process exits.");
                return;
            }
            try { _finalCounters = (ReadCounter(0), ReadCounter(1)); }
            catch (LinuxTraceException) { _finalCounters = (0, 0); }
            _bpf.Dispose();   // detaches, then closes the ring, programs and maps
            _channel.Writer.TryComplete();
        }
    }

    public void Dispose()
    {
        Stop();
        _stop.Dispose();
    }
}
