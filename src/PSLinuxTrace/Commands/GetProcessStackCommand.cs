using System.Management.Automation;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Stacks;

namespace PSLinuxTrace.Commands;

/// <summary>Get-ProcessStack: every thread's backtrace of running processes, from a pause of a few milliseconds.</summary>
[Cmdlet(VerbsCommon.Get, "ProcessStack")]
[OutputType(typeof(ProcessStack))]
public sealed class GetProcessStackCommand : PSLinuxTraceCmdlet
{
    /// <summary>The processes (every thread of each); Get-Process output binds here by its Id.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("ProcessId", "PID")]
    [ValidateNotNullOrEmpty]
    [ValidateRange(1, int.MaxValue)]
    public int[] Id { get; set; } = [];

    /// <summary>Frames per thread at most.</summary>
    [Parameter]
    [ValidateRange(1, 65536)]
    public int MaxFrames { get; set; } = 256;

    private readonly List<int> _ids = new();
    private ProcessStackReader? _reader;

    protected override void ProcessRecord() => _ids.AddRange(Id);

    protected override void EndProcessing()
    {
        _reader = new ProcessStackReader(Log) { MaxFrames = MaxFrames };
        Log.LogInformation("Capturing the stacks of {Count} process(es): each is paused only to copy its registers and stacks.", _ids.Distinct().Count());
        try
        {
            _reader.Read(_ids, stack =>
            {
                DrainLog();
                WriteObject(stack);
            }, (pid, ex) => WriteEngineError(ex, pid), StopToken);
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception ex) when (ex is LinuxTraceException or IOException or UnauthorizedAccessException)
        {
            ThrowEngineError(ex, _ids);
        }
        DrainLog();
    }

    protected override void DisposeResources() => _reader?.Dispose();
}
