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

    /// <summary>The logger handed to the engine; safe to use from any thread.</summary>
    private protected ILogger Log => _log;

    /// <summary>Cancelled when the user presses Ctrl+C or the pipeline stops.</summary>
    protected CancellationToken StopToken => _stop.Token;

    protected override void StopProcessing() => _stop.Cancel();

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

    /// <summary>Writes a non-terminating error for one target, mapped from an engine exception.</summary>
    protected void WriteEngineError(Exception exception, object? target)
    {
        DrainLog();
        WriteError(ErrorMapping.ToErrorRecord(exception, target, MyInvocation?.MyCommand?.Name));
    }

    /// <summary>Stops the command with a terminating error (bad setup: nothing can be done for any target).</summary>
    protected void ThrowEngineError(Exception exception, object? target)
    {
        DrainLog();
        ThrowTerminatingError(ErrorMapping.ToErrorRecord(exception, target, MyInvocation?.MyCommand?.Name));
    }

    /// <summary>Releases what a cmdlet holds (engine objects, kernel handles). PowerShell calls Dispose when the command ends, also after Ctrl+C.</summary>
    protected virtual void DisposeResources()
    {
    }

    public void Dispose()
    {
        // Select-Object -First ends the pipeline by disposing us, without StopProcessing: the engine
        // must learn the consumer is gone (a launched program is then killed, a trace torn down).
        _stop.Cancel();
        DisposeResources();
        _stop.Dispose();
        GC.SuppressFinalize(this);
    }
}
