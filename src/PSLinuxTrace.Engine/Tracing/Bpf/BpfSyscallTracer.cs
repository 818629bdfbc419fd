using System.Buffers.Binary;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Bpf;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;
using PSLinuxTrace.Engine.Syscalls;
using BpfCalls = PSLinuxTrace.Engine.Interop.Bpf;

namespace PSLinuxTrace.Engine.Tracing.Bpf;

/// <summary>
/// strace as typed events without stopping the tracee: src/bpf/syscalls.bpf.c on the raw syscall and
/// scheduler tracepoints records the calls of the tasks in its `traced` map (following forks in the
/// kernel) into a ring buffer, which one thread here decodes with the ptrace engine's decoder into
/// the same events. The same shape as <see cref="SyscallTracer"/>: the channel completes once
/// everything is torn down (programs detached, maps closed, a launched program reaped). Needs
/// CAP_BPF and CAP_PERFMON (or root) and Linux 5.17 (bpf_loop).
/// </summary>
public sealed partial class BpfSyscallTracer
{
    // After the kernel wakes us for the first record, let more gather: one wake-up per batch instead
    // of one per call (a cross-CPU wake-up costs 55-105 us on these VMs, paid by the tracee's CPU).
    private static readonly TimeSpan BatchDelay = TimeSpan.FromMilliseconds(2);
    private static readonly TimeSpan KillWait = TimeSpan.FromSeconds(10);

    private readonly SyscallTraceOptions _options;
    private readonly ILogger _log;
    private readonly CancellationToken _consumerGone;
    private readonly ISyscallArchitecture _arch;
    private readonly SyscallDecoder _decoder;
    private readonly SyscallSummaryBuilder? _summary;
    private readonly Channel<TraceEvent> _channel;
    private readonly FdPathResolver _fds = new();
    private readonly long _bootToRealtimeNs = LibC.ClockNs(LibC.CLOCK_REALTIME) - LibC.ClockNs(LibC.CLOCK_BOOTTIME);
    private BpfCollection? _bpf;
    private RingBufferReader? _ring;
    private BpfMap? _traced, _inflight, _seqs, _counters, _totals;
    private int _launchedPid;
    private bool _launchedReaped, _stoppedEarly;

    private BpfSyscallTracer(SyscallTraceOptions options, ILogger? log, CancellationToken cancel, SyscallSummaryBuilder? summary)
    {
        if (options.StringLimit > BpfSyscallObject.MaxCopy)
            throw new ArgumentException($"The eBPF engine copies at most {BpfSyscallObject.MaxCopy} bytes of a buffer; -StringLimit {options.StringLimit} needs the ptrace engine.");
        if (options.BufferSize < 4096 || (options.BufferSize & (options.BufferSize - 1)) != 0)
            throw new ArgumentException($"The buffer size must be a power of two of at least 4096 bytes; got {options.BufferSize}.");
        _options = options;
        _log = log ?? NullLogger.Instance;
        _consumerGone = cancel;
        _arch = options.Architecture;
        _summary = summary;
        _decoder = new SyscallDecoder { StringLimit = options.StringLimit };
        _channel = Channel.CreateBounded<TraceEvent>(new BoundedChannelOptions(Math.Max(16, options.ChannelCapacity))
        { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
        _lastSequence = new uint[PossibleCpus.Count];
    }

    /// <summary>
    /// Launches <paramref name="program"/> in the traced set before its first instruction (the launcher
    /// shell stops itself, is added, then continued into its execve); events until the traced tree has
    /// exited. With <paramref name="summary"/>, calls are counted in the kernel into it (no SyscallEvents).
    /// Loading errors are thrown here (PermissionDenied naming CAP_BPF, UnsupportedFeature, ...).
    /// </summary>
    public static ChannelReader<TraceEvent> Launch(string program, IReadOnlyList<string> arguments, SyscallTraceOptions options,
        ILogger? log = null, CancellationToken cancel = default, string? stdinPath = null, string? stdoutPath = null, string? stderrPath = null,
        SyscallSummaryBuilder? summary = null)
    {
        string path = TraceeLauncher.ResolveProgram(program, options.WorkingDirectory);
        var t = new BpfSyscallTracer(options, log, cancel, summary);
        t.Load();
        try
        {
            // No PTRACE_O_EXITKILL here: the program is made to die with the calling thread (the cmdlet's, which
            // drains the trace until the program has exited or is killed), so a pwsh killed by SIGKILL takes it along.
            int pid = TraceeLauncher.SpawnStopped(path, arguments, stdinPath, stdoutPath, stderrPath, options.WorkingDirectory, dieWithParent: true);
            t._launchedPid = pid;
            // The shell's own calls until its execve of the program are not reported (TF_SUPPRESS).
            t.AddTask(pid, pid, BpfSyscallObject.TaskSuppress);
            t._fds.Seed(pid);   // the fds the program inherits (stdin, stdout, redirects)
            t._comm[pid] = ReadComm(pid);
            t._live.Add(pid);
            t.Emit(new ProcessStartEvent { Timestamp = DateTime.UtcNow, Pid = pid, Tid = pid, ProcessName = TraceeLauncher.CommAfterExec(path), Kind = ProcessStartKind.Launch, ExecutablePath = path, Engine = TraceEngine.Bpf, Sequence = ++t._sequence });
            t._log.LogInformation("Launched {Path} as process {Pid}, traced by the eBPF engine.", path, pid);
            LibC.kill(pid, LibC.SIGCONT);
        }
        catch
        {
            t.KillLaunched();
            t.Teardown();
            throw;
        }
        t.Start(path);
        return t._channel.Reader;
    }

    /// <summary>Adds every thread of each of <paramref name="pids"/> to the traced set at once; events until they exit or the trace is stopped.</summary>
    public static ChannelReader<TraceEvent> Attach(IReadOnlyList<int> pids, SyscallTraceOptions options, ILogger? log = null,
        CancellationToken cancel = default, SyscallSummaryBuilder? summary = null)
    {
        foreach (int pid in pids)
        {
            if (pid <= 0 || !ProcFs.Exists(pid)) throw new ProcessNotFoundException(pid);
            if (ReadStatus(pid) is { State: 'Z' }) throw new ProcessNotFoundException(pid, $"Process {pid} has exited (it is a zombie waiting for its parent); there is nothing to trace.");
            if (ReadStatus(pid)?.Tgid == Environment.ProcessId)
                throw new UnsupportedFeatureException("Tracing the tracing process itself", null, "each event it handles would make more events", byKernel: false);
        }
        var t = new BpfSyscallTracer(options, log, cancel, summary);
        t.Load();
        try
        {
            foreach (int pid in pids.Distinct()) t.AddProcess(pid);
            t.DropExitedBeforeTraced();
        }
        catch
        {
            t.Teardown();
            throw;
        }
        t.Start($"pid {string.Join(", ", pids)}");
        return t._channel.Reader;
    }

    /// <inheritdoc cref="Attach(IReadOnlyList{int}, SyscallTraceOptions, ILogger?, CancellationToken, SyscallSummaryBuilder?)"/>
    public static ChannelReader<TraceEvent> Attach(int pid, SyscallTraceOptions options, ILogger? log = null, CancellationToken cancel = default) =>
        Attach([pid], options, log, cancel);

    /// <summary>Creates the maps, fills config and the per-call plan, loads and attaches the programs, opens the ring buffer.</summary>
    private void Load()
    {
        RequireInitialPidNamespace();
        Tracefs.Root();
        bool summary = _summary is not null;
        byte[] config = BpfSyscallObject.BuildConfig(_options, summary);
        _bpf = BpfCollection.Load(BpfSyscallObject.Resource, new Dictionary<string, uint>
        {
            ["events"] = (uint)_options.BufferSize,
            ["scratch"] = (uint)Math.Max(1, PossibleCpus.Count),
        }, _log);
        try
        {
            _bpf.Map("config", BpfCalls.BPF_MAP_TYPE_ARRAY, 4, BpfSyscallObject.ConfigSize).Update(Key(0), config);
            BpfMap specs = _bpf.Map("syscalls", BpfCalls.BPF_MAP_TYPE_ARRAY, 4, BpfSyscallObject.SpecSize);
            for (int nr = 0; nr <= Math.Min(_arch.MaxNumber, BpfSyscallObject.MaxNumber - 1); nr++)
                specs.Update(Key((uint)nr), BpfSyscallObject.BuildSpec(nr, _options, summary));
            _traced = _bpf.Map("traced", BpfCalls.BPF_MAP_TYPE_HASH, 4, 8);
            _inflight = _bpf.Map("inflight", BpfCalls.BPF_MAP_TYPE_HASH, 4, BpfSyscallObject.InflightSize);
            _seqs = _bpf.Map("seqs");
            _counters = _bpf.Map("counters");
            _totals = _bpf.Map("totals", BpfCalls.BPF_MAP_TYPE_PERCPU_ARRAY, 4, BpfSyscallObject.TotalsSize);
            _ring = _bpf.OpenRingBuffer("events");
            // Exits first and entries last: a call or task whose start is recorded has its end recorded.
            _bpf.Attach(p => p.RawTracepoint switch { "sys_exit" or "sched_process_exit" => 0, "sys_enter" => 2, _ => 1 });
        }
        catch
        {
            Teardown();
            throw;
        }
    }

    /// <summary>
    /// The kernel program sees tasks by their ids in the initial pid namespace; from inside another
    /// one (a container) /proc shows other numbers, so the engine would trace the wrong tasks.
    /// </summary>
    private static void RequireInitialPidNamespace()
    {
        const string InitPidNamespace = "pid:[4026531836]";   // PROC_PID_INIT_INO (include/linux/proc_ns.h)
        string? ns = LiveTracee.ReadLink("/proc/self/ns/pid");
        if (ns is not null && ns != InitPidNamespace)
            throw new UnsupportedFeatureException("The eBPF engine inside a pid namespace", null,
                $"this process runs in {ns}, not the initial pid namespace the kernel program sees", byKernel: false);
    }

    private void AddTask(int tid, int tgid, uint flags)
    {
        byte[] value = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(value, tgid);
        BinaryPrimitives.WriteUInt32LittleEndian(value.AsSpan(4), flags);
        _traced!.Update(Key((uint)tid), value);
    }

    /// <summary>Every thread of a process, listed until a pass finds no new one (threads that appear meanwhile
    /// are followed by the kernel once their creator is in the set, when following).</summary>
    private void AddProcess(int pid)
    {
        int tgid = ReadStatus(pid)?.Tgid ?? throw new ProcessNotFoundException(pid);
        string comm = ReadComm(tgid);
        _comm[tgid] = comm;
        _fds.Seed(tgid);
        int count = ProcFs.ForEachThread(tgid, _options.FollowForks, tid =>
        {
            AddTask(tid, tgid, 0);
            _live.Add(tid);
            _attachedTgid[tid] = tgid;
            Emit(new ProcessStartEvent { Timestamp = DateTime.UtcNow, Pid = tgid, Tid = tid, ProcessName = comm, Kind = ProcessStartKind.Attach, Engine = TraceEngine.Bpf, Sequence = ++_sequence });
        });
        _log.LogInformation("Tracing process {Pid} ({Count} threads) with the eBPF engine.", tgid, count);
    }

    private void Start(string what)
    {
        var thread = new Thread(() => Run(what)) { IsBackground = true, Name = "PSLinuxTrace eBPF syscall reader" };
        thread.Start();
    }

    private void Run(string what)
    {
        Exception? failure = null;
        try { Loop(); }
        catch (Exception ex)
        {
            failure = ex;
            _log.LogDebug("Tracing {What} failed: {Message}", what, ex.Message);
        }
        finally
        {
            try { Finish(); }
            catch (Exception ex) { failure ??= ex; }
            _channel.Writer.TryComplete(failure);
        }
    }

    private void Loop()
    {
        var clock = Stopwatch.StartNew();
        RingBufferReader.RecordHandler handler = OnRecord;
        TimeSpan lastCheck = TimeSpan.Zero;
        while (true)
        {
            if (_consumerGone.IsCancellationRequested || (_options.Timeout is { } t && t > TimeSpan.Zero && clock.Elapsed >= t))
            {
                _stoppedEarly = true;
                return;
            }
            if (_ring!.Wait(50)) _consumerGone.WaitHandle.WaitOne(BatchDelay);
            _ring.Consume(handler);
            ReapLaunched();
            TimeSpan now = clock.Elapsed;
            if (_live.Count > 0 && now - lastCheck < TimeSpan.FromMilliseconds(250)) continue;
            lastCheck = now;
            ReportKernelCounters();
            DropExitedBeforeTraced();
            // Every traced task is gone once the kernel's set is empty (it removes a task at its exit).
            if (_traced!.IsEmpty && (_launchedPid == 0 || _launchedReaped)) return;
        }
    }

    private void ReapLaunched()
    {
        if (_launchedPid <= 0 || _launchedReaped) return;
        int r = LibC.waitpid(_launchedPid, out _, LibC.WNOHANG);
        if (r == _launchedPid || (r < 0 && Errno.Last == Errno.ECHILD)) _launchedReaped = true;
    }

    /// <summary>Stops what was launched (as strace does on Ctrl+C), reports what is left, detaches and closes everything.</summary>
    private void Finish()
    {
        RingBufferReader.RecordHandler handler = OnRecord;
        if (_ring is not null)
        {
            if (_stoppedEarly && _launchedPid > 0) KillTracedTree(handler);
            // Detached, the programs start no new run; one already running on another CPU finishes
            // within microseconds, which ReportTailLosses waits for before it calls a gap a loss.
            _bpf!.Detach();
            _ring.Consume(handler);
            ReportTailLosses(handler);
            if (_stoppedEarly) ReportInflightAsUnfinished();
            ReportKernelCounters();
            if (_summary is not null) ReadTotals(_summary);
            if (_lostTotal > 0) _log.LogWarning("{Count} event(s) lost in all.", _lostTotal);
        }
        Teardown();
        ReapLaunchedBlocking();
    }

    private void KillTracedTree(RingBufferReader.RecordHandler handler)
    {
        foreach (int tgid in TracedTasks().Select(t => t.Tgid).Append(_launchedPid).Distinct()) LibC.kill(tgid, LibC.SIGKILL);
        var deadline = Stopwatch.StartNew();
        while (!_traced!.IsEmpty && deadline.Elapsed < KillWait)
        {
            _ring!.Wait(20);
            _ring.Consume(handler);
            ReapLaunched();
            // A child forked while we killed: kill what the set holds now.
            foreach (var (tid, _) in TracedTasks()) LibC.kill(tid, LibC.SIGKILL);
        }
        Thread.Sleep(1);   // the exit records follow the set's last deletion by a few instructions
    }

    /// <summary>(tid, tgid) of every task in the kernel's traced set.</summary>
    private List<(int Tid, int Tgid)> TracedTasks()
    {
        var list = new List<(int, int)>();
        foreach (byte[] key in _traced!.Keys())
            if (_traced.TryLookup(key) is { } v)
                list.Add((BinaryPrimitives.ReadInt32LittleEndian(key), BinaryPrimitives.ReadInt32LittleEndian(v)));
        return list;
    }

    private void Teardown()
    {
        _bpf?.Dispose();   // detaches, then closes the ring, programs and maps
        _bpf = null;
        _ring = null;
    }

    private void KillLaunched()
    {
        if (_launchedPid <= 0) return;
        LibC.kill(_launchedPid, LibC.SIGKILL);
        ReapLaunchedBlocking();
    }

    private void ReapLaunchedBlocking()
    {
        if (_launchedPid <= 0) return;
        var deadline = Stopwatch.StartNew();
        while (!_launchedReaped && deadline.Elapsed < KillWait)
        {
            ReapLaunched();
            if (!_launchedReaped) Thread.Sleep(5);
        }
        if (!_launchedReaped) _log.LogWarning("The launched process {Pid} did not exit within {Seconds} s; it is left running.", _launchedPid, KillWait.TotalSeconds);
    }

    private void Emit(TraceEvent e)
    {
        if (_channel.Writer.TryWrite(e)) return;
        if (_consumerGone.IsCancellationRequested) return;   // nobody reads any more
        try { _channel.Writer.WriteAsync(e, _consumerGone).AsTask().GetAwaiter().GetResult(); }
        catch (OperationCanceledException) { }
    }

    private static byte[] Key(uint k)
    {
        byte[] b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, k);
        return b;
    }

    private static ProcessStatus? ReadStatus(int pid)
    {
        try { return ProcFs.ReadStatus(pid); }
        catch (LinuxTraceException) { return null; }
        catch (IOException) { return null; }
    }

    private static string ReadComm(int pid)
    {
        try { return ProcFs.ReadComm(pid); }
        catch (LinuxTraceException) { return ""; }
        catch (IOException) { return ""; }
    }
}
