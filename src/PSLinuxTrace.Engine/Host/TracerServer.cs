using System.Text;
using System.Threading.Channels;
using PSLinuxTrace.Engine.Wire;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Snapshot;
using PSLinuxTrace.Engine.Tracing;

namespace PSLinuxTrace.Engine.Host;

/// <summary>
/// The tracer process's side: reads one <see cref="TracerRequest"/>, runs it here on this process's
/// own threads (ptrace's rule: every request from the thread that attached), and streams its output
/// objects, log lines and progress back as frames, then an Error frame if it failed, then Done. A
/// Cancel frame, the end of its input (the user's process is gone), SIGTERM or SIGHUP cancel the job,
/// which then cleans up exactly as after Ctrl+C: attached tracees detached, launched programs killed.
/// </summary>
public static class TracerServer
{
    private static readonly CancellationTokenSource Stop = new();
    private static readonly SemaphoreSlim ProgressReturned = new(0);
    /// <summary>Progress frames go out at most this often (and always for the last byte), since each waits for the client.</summary>
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>Cancels the running job (from a signal handler).</summary>
    public static void CancelFromSignal() => Stop.Cancel();

    /// <summary>The tracer program's first argument, before the name of the socket to connect to.</summary>
    public const string ConnectOption = TracerChannel.ConnectOption;

    /// <summary>Connects to the user's process at the socket <paramref name="name"/> and runs the one job it sends; the exit code.</summary>
    public static int Run(string name)
    {
        System.Net.Sockets.Socket socket;
        try
        {
            socket = TracerChannel.Connect(name);
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or LinuxTraceException)
        {
            Console.Error.WriteLine($"pslinuxtrace-tracer: {ex.Message}");
            return 2;
        }
        using var connection = new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
        return Run(connection, connection);
    }

    /// <summary>Runs one job from <paramref name="input"/>, writing to <paramref name="output"/>; the exit code.</summary>
    public static int Run(Stream input, Stream output)
    {
        TracerHost.IsTracerProcess = true;
        if (!Frames.TryRead(input, out var kind, out var payload) || kind != FrameKind.Request) return 2;
        var request = TracerJson.DecodeRequest(payload);
        TracerHost.UserProcessId = request.ClientPid > 0 ? request.ClientPid : Environment.ProcessId;
        using var writer = new FrameWriter(output);
        var listener = new Thread(() => ListenForCancel(input)) { IsBackground = true, Name = "PSLinuxTrace tracer input" };
        listener.Start();
        var log = new FrameLogger(writer, (LogLevel)request.MinimumLogLevel);
        try
        {
            RunJob(request, writer, log, Stop.Token);
        }
        catch (Exception ex)
        {
            writer.Write(FrameKind.Error, TracerJson.Encode(RemoteError.Describe(ex)));
        }
        writer.Write(FrameKind.Done, []);
        return 0;
    }

    private static void ListenForCancel(Stream input)
    {
        try
        {
            while (Frames.TryRead(input, out var kind, out _))
            {
                if (kind == FrameKind.Cancel) break;
                if (kind == FrameKind.ProgressDone) ProgressReturned.Release();
            }
        }
        catch (Exception ex) when (ex is IOException or BadInputFormatException) { }
        Stop.Cancel();
    }

    private static void RunJob(TracerRequest r, FrameWriter writer, ILogger log, CancellationToken cancel)
    {
        switch (r.Operation)
        {
            case TracerOperation.AttachTrace:
                if (r.Pid == TracerHost.UserProcessId) throw Access.AccessDiagnosis.Explain(r.Pid, "ptrace(PTRACE_SEIZE)", Interop.Errno.EPERM);
                Await(SyscallTracer.Attach(r.Pid, Options(r), log, cancel, Sink(writer)));
                break;
            case TracerOperation.LaunchTrace:
                Await(SyscallTracer.Launch(r.Program!, r.Arguments, Options(r), log, cancel, r.StandardInput, r.StandardOutput, r.StandardError,
                    Sink(writer)));
                break;
            case TracerOperation.LiveSnapshot:
                Result(writer, new LiveSnapshotter(log).Save(r.Pid, r.OutputPath!, r.Include, Progress(writer), cancel, r.Method));
                break;
            case TracerOperation.LaunchSnapshot:
                Result(writer, new LaunchSnapshotter(log).Save(r.Program!, r.Arguments, r.OutputPath!, r.Include,
                    r.StandardInput, r.StandardOutput, r.StandardError, Progress(writer), cancel, r.WorkingDirectory));
                break;
            case TracerOperation.CaptureStacks:
                CaptureStacks(r.Pids, writer, log, cancel);
                break;
            default:
                throw new ArgumentException($"Unknown tracer operation {r.Operation}.");
        }
    }

    /// <summary>Each process in turn, each its own pause; one that fails is reported and the others go on.</summary>
    private static void CaptureStacks(int[] pids, FrameWriter writer, ILogger log, CancellationToken cancel)
    {
        using var session = new Ptrace.PtraceSession(log);
        foreach (int pid in pids)
        {
            cancel.ThrowIfCancellationRequested();
            try
            {
                writer.Write(FrameKind.Item, TracerJson.EncodeObject(Stacks.StackCapture.Capture(session, pid, log, cancel)));
            }
            catch (Exception ex) when (ex is LinuxTraceException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                writer.Write(FrameKind.TargetError, TracerJson.Encode(RemoteError.Describe(ex) with { Target = pid }));
            }
        }
    }

    private static SyscallTraceOptions Options(TracerRequest r) =>
        (r.Trace ?? throw new ArgumentException("A trace request without options.")).ToOptions();

    /// <summary>Events straight from the tracer thread to the pipe; a full pipe holds the tracer (and so the tracee) back.</summary>
    private static Action<TraceEvent> Sink(FrameWriter writer) => writer.Write;

    /// <summary>Waits for the trace to end (every tracee released), rethrowing its error.</summary>
    private static void Await(ChannelReader<TraceEvent> trace) => trace.Completion.GetAwaiter().GetResult();

    private static void Result(FrameWriter writer, object result) => writer.Write(FrameKind.Result, TracerJson.EncodeObject(result));

    private static Action<long, long> Progress(FrameWriter writer)
    {
        var last = System.Diagnostics.Stopwatch.StartNew();
        bool first = true;
        return (done, total) =>
        {
            if (!first && done < total && last.Elapsed < ProgressInterval) return;
            first = false;
            last.Restart();
            var payload = new byte[16];
            BitConverter.TryWriteBytes(payload.AsSpan(0, 8), done);
            BitConverter.TryWriteBytes(payload.AsSpan(8, 8), total);
            writer.Write(FrameKind.Progress, payload);
            // The client's callback runs while the job waits (a caller may act on the target at a given point).
            try { ProgressReturned.Wait(Stop.Token); }
            catch (OperationCanceledException) { }
        };
    }

    /// <summary>Log lines as Log frames: one byte of level, then the text.</summary>
    private sealed class FrameLogger(FrameWriter writer, LogLevel minimum) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            string message = formatter(state, exception);
            if (exception is not null) message += $" ({exception.Message})";
            var payload = new byte[1 + Encoding.UTF8.GetMaxByteCount(message.Length)];
            payload[0] = (byte)logLevel;
            int n = Encoding.UTF8.GetBytes(message, payload.AsSpan(1));
            writer.Write(FrameKind.Log, payload.AsSpan(0, n + 1));
        }
    }
}
