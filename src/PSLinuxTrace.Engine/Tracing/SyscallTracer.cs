using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Wire;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;
using PSLinuxTrace.Engine.Syscalls;

namespace PSLinuxTrace.Engine.Tracing;

/// <summary>
/// strace as typed events. One dedicated thread owns the trace's <see cref="PtraceSession"/> (ptrace
/// ties a tracee to the thread that attached it): it seizes the tracees, runs the wait loop and writes
/// events to a bounded channel that the consumer drains on its own thread. Cancellation or the timeout
/// ends the trace: attached processes are detached (each left exactly as it was: running, or stopped if
/// it was group-stopped, pending signals passed on), launched ones are killed with their whole tree, as
/// strace does. The channel completes only once that is done: every tracee detached, or killed and
/// reaped (the cmdlets' Dispose relies on it). In the user's process the trace runs in the tracer
/// process (Host/), and this channel is fed from its frames.
/// </summary>
public sealed partial class SyscallTracer
{
    private readonly SyscallTraceOptions _options;
    private readonly ILogger _log;
    private readonly CancellationToken _consumerGone;
    private readonly SyscallDecoder _decoder;
    private readonly SyscallFilter _filter;
    private readonly ISyscallArchitecture _arch;
    private readonly Channel<TraceEvent> _channel;
    private readonly Dictionary<int, Tracee> _tracees = new();
    private readonly Dictionary<int, string> _comms = new();
    private PtraceSession _session = null!;
    private SyscallStacks? _stacks;
    private CpuPin? _pin;
    /// <summary>In the tracer process: where events go straight from the tracer thread (the channel then only completes).</summary>
    private Action<TraceEvent>? _sink;
    private CancellationTokenSource? _stop;
    private bool _launched;
    private bool _seccompWanted;
    private bool _seccompActive;
    private PtraceOptions _ptraceOptions;

    private sealed class Tracee
    {
        public int Tid, Tgid;
        public string Comm = "";
        public bool InSyscall, Selected, SuppressUntilExec;
        public int Number;
        public ulong[] Args = [];
        public string?[]? Entry;
        public long StartTicks;
        public DateTime StartTime;
        public bool GroupStopped;
        public StackFrame[]? Stack;
    }

    private SyscallTracer(SyscallTraceOptions options, ILogger? log, CancellationToken cancel)
    {
        _options = options;
        _log = log ?? NullLogger.Instance;
        _consumerGone = cancel;
        _arch = options.Architecture;
        _filter = options.Filter ?? SyscallFilter.All(_arch);
        // Without a filter every call is seen, so fd paths can be cached and kept true call by call.
        _decoder = new SyscallDecoder { StringLimit = options.StringLimit, CacheFdPaths = _filter.IsAll };
        _channel = Channel.CreateBounded<TraceEvent>(new BoundedChannelOptions(Math.Max(16, options.ChannelCapacity))
        { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
    }

    /// <summary>Launches <paramref name="program"/> traced from before its execve; events until the traced tree has exited.</summary>
    public static ChannelReader<TraceEvent> Launch(string program, IReadOnlyList<string> arguments, SyscallTraceOptions options,
        ILogger? log = null, CancellationToken cancel = default, string? stdinPath = null, string? stdoutPath = null, string? stderrPath = null) =>
        Launch(program, arguments, options, log, cancel, stdinPath, stdoutPath, stderrPath, null);

    /// <summary>
    /// In the tracer process, <paramref name="sink"/> takes each event on the tracer thread (no hop through the
    /// channel, whose completion then only says the trace is over and how).
    /// </summary>
    internal static ChannelReader<TraceEvent> Launch(string program, IReadOnlyList<string> arguments, SyscallTraceOptions options,
        ILogger? log, CancellationToken cancel, string? stdinPath, string? stdoutPath, string? stderrPath, Action<TraceEvent>? sink)
    {
        string? workingDirectory = options.WorkingDirectory;
        string path = TraceeLauncher.ResolveProgram(program, workingDirectory);
        if (!TracerHost.RunsInPlace)
            return TracerClient.Trace(new TracerRequest
            {
                Operation = TracerOperation.LaunchTrace, Program = path, Arguments = [.. arguments],
                StandardInput = stdinPath, StandardOutput = stdoutPath, StandardError = stderrPath, Trace = options.ToWire(),
            }, options.ChannelCapacity, log, cancel);
        var tracer = new SyscallTracer(options, log, cancel) { _sink = sink };
        tracer.Start(() => tracer.StartLaunched(path, arguments, workingDirectory, stdinPath, stdoutPath, stderrPath), path);
        return tracer._channel.Reader;
    }

    /// <summary>Attaches to every thread of <paramref name="pid"/> with PTRACE_SEIZE; events until it exits or the trace is stopped.</summary>
    public static ChannelReader<TraceEvent> Attach(int pid, SyscallTraceOptions options, ILogger? log = null, CancellationToken cancel = default) =>
        Attach(pid, options, log, cancel, null);

    internal static ChannelReader<TraceEvent> Attach(int pid, SyscallTraceOptions options, ILogger? log, CancellationToken cancel, Action<TraceEvent>? sink)
    {
        var status = pid > 0 ? TryReadStatus(pid) : null;
        if (status is null) throw new ProcessNotFoundException(pid);
        // A zombie has exited and only waits for its parent to reap it: ptrace refuses it with EPERM,
        // which would read as a permission problem.
        if (status.State == 'Z') throw new ProcessNotFoundException(pid, $"Process {pid} has exited (it is a zombie waiting for its parent); there is nothing to trace.");
        if (!TracerHost.RunsInPlace)
            return TracerClient.Trace(new TracerRequest { Operation = TracerOperation.AttachTrace, Pid = pid, Trace = options.ToWire() },
                options.ChannelCapacity, log, cancel);
        var tracer = new SyscallTracer(options, log, cancel) { _sink = sink };
        tracer.Start(() => tracer.StartAttached(status.Tgid > 0 ? status.Tgid : pid), $"pid {pid}");
        return tracer._channel.Reader;
    }

    /// <summary>Blocking enumeration of a trace (for scripts, tests and benchmarks); rethrows the tracer's error.</summary>
    public static IEnumerable<TraceEvent> ReadAll(ChannelReader<TraceEvent> reader)
    {
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            while (reader.TryRead(out var e)) yield return e;
        reader.Completion.GetAwaiter().GetResult();
    }

    private void Start(Action begin, string what)
    {
        var thread = new Thread(() => Run(begin, what)) { IsBackground = true, Name = "PSLinuxTrace syscall tracer" };
        thread.Start();
    }

    private void Run(Action begin, string what)
    {
        Exception? failure = null;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(_consumerGone);
        _session = new PtraceSession(_log);
        if (_options.StackFrames > 0) _stacks = new SyscallStacks(_log, _options.StackFrames);
        try
        {
            _session.WakeOn(_stop.Token);
            if (_options.Timeout is { } t && t > TimeSpan.Zero) _stop.CancelAfter(t);
            begin();
            Loop();
        }
        catch (Exception ex)
        {
            failure = ex;
            _log.LogDebug("Tracing {What} failed: {Message}", what, ex.Message);
        }
        finally
        {
            try { Finish(); }
            catch (Exception ex) { failure ??= ex; }
            _pin?.Dispose();
            _stacks?.Dispose();
            _session.Dispose();
            _stop.Dispose();
            _channel.Writer.TryComplete(failure);
        }
    }

    private void Loop()
    {
        while (_tracees.Count > 0 && !_stop!.IsCancellationRequested)
        {
            var w = _session.WaitAny();
            if (w.Woken) break;
            if (w.NoTasks) { _tracees.Clear(); break; }
            Handle(w.Pid, w.Status);
        }
    }

    private Tracee AddTracee(int tid, int tgid)
    {
        var t = new Tracee { Tid = tid, Tgid = tgid, Comm = Comm(tgid) };
        _tracees[tid] = t;
        return t;
    }

    private void Emit(TraceEvent e)
    {
        if (_sink is not null)
        {
            if (!_consumerGone.IsCancellationRequested) _sink(e);
            return;
        }
        if (_channel.Writer.TryWrite(e)) return;
        if (_consumerGone.IsCancellationRequested) return; // nobody reads any more
        try { _channel.Writer.WriteAsync(e, _consumerGone).AsTask().GetAwaiter().GetResult(); }
        catch (OperationCanceledException) { }
    }

    private static ProcessStatus? TryReadStatus(int tid)
    {
        try { return ProcFs.ReadStatus(tid); }
        catch (LinuxTraceException) { return null; }
        catch (IOException) { return null; }
    }

    private static int? ReadTgid(int tid) => TryReadStatus(tid)?.Tgid;

    /// <summary>A process's name, read once per process (threads share it) until an exec changes it.</summary>
    private string Comm(int tgid)
    {
        if (_comms.TryGetValue(tgid, out var comm)) return comm;
        try { comm = ProcFs.ReadComm(tgid); }
        catch (LinuxTraceException) { comm = ""; }
        catch (IOException) { comm = ""; }
        return _comms[tgid] = comm;
    }
}
