using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Wire;

/// <summary>
/// The user's side of one job in the tracer process: starts <see cref="TracerHost.ExecutablePath"/>
/// with the user's own standard streams (a program it launches shares them, as one pwsh starts does),
/// takes its connection (<see cref="TracerChannel"/>), sends the request, and turns the frames it sends back into output objects, log lines, progress
/// calls and, at the end, the job's result or its exception (the same type as if it had run here).
/// Cancelling sends a Cancel frame and keeps reading until the tracer says Done, so that nothing it
/// held (a stopped thread, a traced process) outlives the call.
/// </summary>
internal sealed class TracerClient : IDisposable
{
    private static readonly TimeSpan ExitWait = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly NetworkStream _connection;
    private readonly Stream _toTracer;
    private readonly Stream _fromTracer;
    private int _cancelled;
    private bool _done;

    private TracerClient(Process process, Socket connection)
    {
        _process = process;
        _connection = new NetworkStream(connection, ownsSocket: true);
        _toTracer = _fromTracer = _connection;
    }

    public static TracerClient Start(TracerRequest request) => Start(request, TracerHost.ExecutablePath);

    internal static TracerClient Start(TracerRequest request, string exe)
    {
        if (!File.Exists(exe))
            throw new LinuxTraceException($"The tracer program '{exe}' is missing: the module folder is incomplete (rebuild it with dotnet build, or set ${TracerHost.PathVariable}).");
        // Nothing redirected: the tracer and what it launches have the user's stdin, stdout and stderr
        // (and, on a terminal, the runtime gives them the terminal's own settings while they run).
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false };
        using var listener = TracerChannel.Listen(out string name);
        psi.ArgumentList.Add(TracerChannel.ConnectOption);
        psi.ArgumentList.Add(name);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new LinuxTraceException($"The tracer program '{exe}' could not be started.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new LinuxTraceException($"The tracer program '{exe}' could not be started: {ex.Message}", ex);
        }
        TracerClient client;
        try
        {
            client = new TracerClient(process, TracerChannel.Accept(listener, process));
        }
        catch
        {
            process.Dispose();
            throw;
        }
        try
        {
            Frames.Write(client._toTracer, FrameKind.Request, TracerJson.Encode(request with { ClientPid = Environment.ProcessId }));
        }
        catch (IOException)
        {
            // It died at once: Pump reports how.
        }
        return client;
    }

    /// <summary>Asks the tracer to stop the job; it cleans up and then says Done.</summary>
    public void Cancel()
    {
        if (Interlocked.Exchange(ref _cancelled, 1) == 0) Send(FrameKind.Cancel);
    }

    private void Send(FrameKind kind)
    {
        // Cancel comes from a cancellation callback on another thread than ProgressDone.
        lock (_toTracer)
        {
            try { Frames.Write(_toTracer, kind, []); }
            catch (IOException) { }
            catch (ObjectDisposedException) { }
        }
    }

    /// <summary>
    /// Reads frames until Done, on the calling thread (so <paramref name="onProgress"/> runs there too);
    /// returns the job's result object, or throws its exception.
    /// </summary>
    public object? Pump(ILogger log, Action<object>? onObject, Action<long, long>? onProgress, CancellationToken cancel,
        Action<int, Exception>? onTargetError = null)
    {
        using var registration = cancel.Register(Cancel);
        object? result = null;
        Exception? error = null;
        bool done = false;
        while (!done && Frames.TryRead(_fromTracer, out var kind, out var payload))
        {
            switch (kind)
            {
                case FrameKind.Log when payload.Length >= 1:
                    log.Log((LogLevel)payload[0], "{Message}", Encoding.UTF8.GetString(payload, 1, payload.Length - 1));
                    break;
                case FrameKind.Progress when payload.Length == 16:
                    try
                    {
                        onProgress?.Invoke(BitConverter.ToInt64(payload, 0), BitConverter.ToInt64(payload, 8));
                    }
                    finally
                    {
                        Send(FrameKind.ProgressDone);
                    }
                    break;
                case FrameKind.Event:
                    onObject?.Invoke(TraceEventCodec.Decode(payload));
                    break;
                case FrameKind.Result:
                    result = TracerJson.DecodeObject(payload);
                    break;
                case FrameKind.Item:
                    onObject?.Invoke(TracerJson.DecodeObject(payload));
                    break;
                case FrameKind.TargetError:
                    var info = TracerJson.DecodeError(payload);
                    onTargetError?.Invoke(info.Target, RemoteError.Rebuild(info));
                    break;
                case FrameKind.Error:
                    error = RemoteError.Rebuild(TracerJson.DecodeError(payload));
                    break;
                case FrameKind.Done:
                    done = _done = true;
                    break;
            }
        }
        bool exited = _process.WaitForExit(ExitWait);
        if (!done) throw new LinuxTraceException($"The tracer process ended before its job was done ({Describe(exited)}).");
        if (error is not null) throw error;
        return result;
    }

    private string Describe(bool exited) => exited ? TracerChannel.ExitDescription(_process.ExitCode) : "it stopped answering";

    /// <summary>
    /// Ends the job: cancels it if it is not done and, when the caller stopped reading before Done (an
    /// exception out of a callback: Select-Object -First), reads and drops what the tracer still writes,
    /// so that it is never blocked on a full pipe while it releases its tracees; kills it only if it does
    /// not exit within <see cref="ExitWait"/>.
    /// </summary>
    public void Dispose()
    {
        Cancel();
        try
        {
            if (!_done)
            {
                var drain = Task.Run(() =>
                {
                    try { while (Frames.TryRead(_fromTracer, out var kind, out _) && kind != FrameKind.Done) { } }
                    catch (Exception ex) when (ex is IOException or ObjectDisposedException or BadInputFormatException) { }
                });
                drain.Wait(ExitWait);
            }
            if (!_process.WaitForExit(ExitWait)) _process.Kill();
        }
        catch (InvalidOperationException) { }
        _connection.Dispose();
        _process.Dispose();
    }

    /// <summary>A syscall trace in the tracer process, as a channel the caller drains (completes after Done).</summary>
    public static ChannelReader<TraceEvent> Trace(TracerRequest request, int capacity, ILogger? log, CancellationToken cancel)
    {
        var client = Start(request);
        var channel = Channel.CreateBounded<TraceEvent>(new BoundedChannelOptions(Math.Max(16, capacity))
        { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
        var thread = new Thread(() =>
        {
            Exception? failure = null;
            try
            {
                client.Pump(log ?? NullLogger.Instance, o =>
                {
                    if (o is not TraceEvent e || channel.Writer.TryWrite(e)) return;
                    // Full: wait for the consumer, unless it is gone (then the events are dropped while the tracer cleans up).
                    try { channel.Writer.WriteAsync(e, cancel).AsTask().GetAwaiter().GetResult(); }
                    catch (OperationCanceledException) { }
                }, null, cancel);
            }
            catch (Exception ex)
            {
                failure = ex;
            }
            finally
            {
                client.Dispose();
                channel.Writer.TryComplete(failure);
            }
        }) { IsBackground = true, Name = "PSLinuxTrace tracer client" };
        thread.Start();
        return channel.Reader;
    }

    /// <summary>
    /// A job with many output objects and per-target errors (stack captures), run to its end on the calling
    /// thread, which gets each object and error as it arrives while the tracer process goes on with the next.
    /// </summary>
    public static void RunMany(TracerRequest request, ILogger? log, Action<object> onObject, Action<int, Exception> onTargetError, CancellationToken cancel)
    {
        using var client = Start(request);
        client.Pump(log ?? NullLogger.Instance, onObject, null, cancel, onTargetError);
    }

    /// <summary>A job with one result object (a snapshot), run to its end on the calling thread.</summary>
    public static T Run<T>(TracerRequest request, ILogger? log, Action<long, long>? progress, CancellationToken cancel) where T : class
    {
        using var client = Start(request);
        object? result = client.Pump(log ?? NullLogger.Instance, null, progress, cancel);
        cancel.ThrowIfCancellationRequested();
        return result as T ?? throw new LinuxTraceException($"The tracer process returned no {typeof(T).Name}.");
    }
}
