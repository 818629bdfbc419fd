using System.Management.Automation;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine;

namespace PSLinuxTrace;

/// <summary>
/// What every PSLinuxTrace cmdlet shares: the engine logger drained to the verbose/debug/warning
/// streams on the pipeline thread, cancellation from Ctrl+C (StopProcessing), and the one mapping
/// from engine exceptions to ErrorRecords.
/// </summary>
public abstract class PSLinuxTraceCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly PipelineLogger _log = new();
    // The channels the engine fills, as "discard what is unread; true once complete": a channel's
    // completion comes once the engine has undone what it did to the system and every item was read (see Dispose).
    private readonly List<Func<bool>> _engineWork = new();

    /// <summary>How long Dispose waits for the engine to detach, kill and close what it holds.</summary>
    internal static readonly TimeSpan CleanupWait = TimeSpan.FromSeconds(10);

    /// <summary>The logger handed to the engine; safe to use from any thread.</summary>
    private protected ILogger Log => _log;

    /// <summary>Cancelled when the user presses Ctrl+C or the pipeline stops.</summary>
    protected CancellationToken StopToken => _stop.Token;

    protected override void StopProcessing() => _stop.Cancel();

    /// <summary>Registers engine work that Dispose must wait for: the completion of a channel the engine fills.</summary>
    protected void TrackEngineWork<T>(ChannelReader<T> reader)
    {
        lock (_engineWork) _engineWork.Add(() =>
        {
            while (reader.TryRead(out _)) { }
            return reader.Completion.IsCompleted;
        });
    }

    /// <summary>The current FileSystem location ($PWD of the FileSystem provider): where launched programs start.</summary>
    protected string CurrentDirectory => SessionState.Path.CurrentFileSystemLocation.ProviderPath;

    /// <summary>
    /// A path parameter as a file system path, resolved through the session state as every cmdlet does:
    /// relative to $PWD, with ~ and PSDrives (TestDrive:, Temp:) working. Not a file system path: ArgumentException.
    /// </summary>
    protected string ResolveFileSystemPath(string path)
    {
        string resolved = SessionState.Path.GetUnresolvedProviderPathFromPSPath(path, out ProviderInfo provider, out _);
        if (provider.Name != "FileSystem") throw new ArgumentException($"'{path}' is not a file system path (it is on the {provider.Name} provider).");
        return resolved;
    }

    /// <summary>An optional path parameter, resolved (null stays null).</summary>
    protected string? ResolveOptionalPath(string? path) => path is null ? null : ResolveFileSystemPath(path);

    /// <summary>
    /// A launched program's standard input, output or error: the redirect when given; else, in a session
    /// without a console (a remote session or a background job, whose own stdin and stdout carry the
    /// remoting protocol), /dev/null, so that the program can neither read nor write the session's
    /// transport; else null (the console).
    /// </summary>
    protected string? ResolveLaunchStream(string? path) =>
        path is not null ? ResolveFileSystemPath(path) : Host.Name == RemoteHostName ? "/dev/null" : null;

    /// <summary>The host of a remote session's or a job's pwsh (System.Management.Automation.Remoting.ServerRemoteHost).</summary>
    private const string RemoteHostName = "ServerRemoteHost";

    /// <summary>
    /// A program to launch, as Start-Process and the shell find it: a name without a slash is looked up
    /// in PATH (by the engine); ./app, ~/bin/app or a PSDrive path is a path relative to $PWD.
    /// </summary>
    protected string ResolveProgram(string filePath) =>
        filePath.Contains('/') || filePath.Contains('\\') || filePath.StartsWith('~') || filePath.Contains(':') ? ResolveFileSystemPath(filePath) : filePath;

    /// <summary>Writes queued engine log lines. Call only on the pipeline thread.</summary>
    protected void DrainLog()
    {
        while (_log.TryDequeue(out var entry))
        {
            switch (entry.Level)
            {
                case LogLevel.Warning:
                case LogLevel.Error:
                case LogLevel.Critical:
                    WriteWarning(entry.Message);
                    break;
                case LogLevel.Debug:
                case LogLevel.Trace:
                    WriteDebug(entry.Message);
                    break;
                default:
                    WriteVerbose(entry.Message);
                    break;
            }
        }
    }

    /// <summary>
    /// Reads a channel the engine fills from its own thread and writes every item on the pipeline
    /// thread, draining log lines while it waits. Returns when the channel completes; rethrows the
    /// engine's exception if it completed with one; returns early (without throwing) on Ctrl+C.
    /// </summary>
    protected void DrainChannel<T>(ChannelReader<T> reader, Action<T> write)
    {
        TrackEngineWork(reader);
        while (true)
        {
            DrainLog();
            while (reader.TryRead(out T? item))
            {
                write(item);
                DrainLog();
            }
            if (reader.Completion.IsCompleted)
            {
                DrainLog();
                // Completion carries the engine's exception, if any.
                reader.Completion.GetAwaiter().GetResult();
                return;
            }
            if (StopToken.IsCancellationRequested) return;
            try
            {
                // Wake at least every 100 ms so log lines appear while no events arrive.
                reader.WaitToReadAsync(StopToken).AsTask().Wait(100);
            }
            catch (AggregateException ex) when (ex.InnerException is OperationCanceledException) { return; }
        }
    }

    /// <summary>
    /// Writes a non-terminating error for one target, mapped from an engine exception (or with one of
    /// <see cref="ErrorMapping"/>'s own ids).
    /// </summary>
    protected void WriteEngineError(Exception exception, object? target, string? errorId = null, ErrorCategory? category = null)
    {
        DrainLog();
        WriteError(ErrorMapping.ToErrorRecord(exception, target, errorId, category));
    }

    /// <summary>Stops the command with a terminating error (bad setup: nothing can be done for any target).</summary>
    protected void ThrowEngineError(Exception exception, object? target, string? errorId = null, ErrorCategory? category = null)
    {
        DrainLog();
        ThrowTerminatingError(ErrorMapping.ToErrorRecord(exception, target, errorId, category));
    }

    /// <summary>
    /// Releases what a cmdlet holds (engine objects, kernel handles). Runs after the engine work was
    /// cancelled and waited for; PowerShell calls Dispose when the command ends, also after Ctrl+C.
    /// </summary>
    protected virtual void DisposeResources()
    {
    }

    /// <summary>
    /// `Select-Object -First N` stops upstream commands by throwing from WriteObject, and PowerShell
    /// then calls Dispose without StopProcessing: so Dispose cancels the engine's token too, then waits
    /// (at most <see cref="CleanupWait"/>) for every tracked channel to complete, discarding the events
    /// nobody will read (a bounded channel completes only once empty). That wait rests on the
    /// engine's contract: a SyscallTracer channel completes only after every tracee was detached (or,
    /// for a launched program, killed and reaped); ExecWatcher's completes when its reader thread ends,
    /// and its Stop/Dispose (in DisposeResources) closes every BPF object.
    /// </summary>
    public void Dispose()
    {
        try { _stop.Cancel(); } catch (ObjectDisposedException) { }
        Func<bool>[] work;
        lock (_engineWork) work = _engineWork.ToArray();
        // A channel that completed with the engine's error has still finished its cleanup.
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!work.Select(discardAndCheck => discardAndCheck()).ToArray().All(done => done) && waited.Elapsed < CleanupWait) Thread.Sleep(5);
        DisposeResources();
        _stop.Dispose();
        GC.SuppressFinalize(this);
    }
}
