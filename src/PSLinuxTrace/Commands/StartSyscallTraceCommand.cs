using System.Management.Automation;
using System.Threading.Channels;
using PSLinuxTrace.Completion;
using PSLinuxTrace.Engine;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Syscalls;
using PSLinuxTrace.Engine.Tracing;

namespace PSLinuxTrace.Commands;

/// <summary>Start-SyscallTrace: strace as typed objects, for a launched program or running processes.</summary>
[Cmdlet(VerbsLifecycle.Start, "SyscallTrace", DefaultParameterSetName = LaunchSet)]
[OutputType(typeof(SyscallEvent), typeof(SignalEvent), typeof(ProcessExitEvent), typeof(ProcessStartEvent), typeof(LostEventsEvent), typeof(SyscallSummary))]
public sealed class StartSyscallTraceCommand : PSLinuxTraceCmdlet
{
    private const string LaunchSet = "Launch", AttachSet = "Attach";

    /// <summary>The program to launch, traced from before its execve.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = LaunchSet)]
    [ValidateNotNullOrEmpty]
    public string FilePath { get; set; } = "";

    /// <summary>Arguments of the launched program.</summary>
    [Parameter(Position = 1, ParameterSetName = LaunchSet)]
    [Alias("Args")]
    public string[] ArgumentList { get; set; } = Array.Empty<string>();

    /// <summary>Processes to attach to (every thread of each).</summary>
    [Parameter(Mandatory = true, ParameterSetName = AttachSet, ValueFromPipelineByPropertyName = true)]
    [Alias("ProcessId", "PID")]
    [ValidateNotNullOrEmpty]
    [ValidateRange(1, int.MaxValue)]
    public int[] Id { get; set; } = Array.Empty<int>();

    /// <summary>System call names, wildcards and strace classes (%file, %network, %process, %memory, %signal, %desc, %ipc, %creds).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(SyscallNameCompleter))]
    public string[]? Syscall { get; set; }

    /// <summary>Only calls that failed (strace -Z).</summary>
    [Parameter]
    public SwitchParameter FailedOnly { get; set; }

    /// <summary>One object per system call name at the end instead of one per call (strace -c).</summary>
    [Parameter]
    public SwitchParameter Summary { get; set; }

    /// <summary>Do not follow forks, vforks, clones and new threads.</summary>
    [Parameter]
    public SwitchParameter NoFollow { get; set; }

    /// <summary>Stop tracing after this long (a number is seconds): detach, or kill a launched program.</summary>
    [Parameter]
    [SecondsToTimeSpan]
    public TimeSpan Timeout { get; set; }

    /// <summary>How many bytes of data buffers to show (strace -s).</summary>
    [Parameter]
    [ValidateRange(0, 1048576)]
    public int StringLimit { get; set; } = 32;

    /// <summary>
    /// Give every system call the user stack that made it (strace -k): StackTrace on each SyscallEvent,
    /// innermost frame first, symbolized with file:line where the modules have debug information.
    /// Only the ptrace engine can stop the tracee to read its stack: Auto picks it, -Engine Bpf refuses.
    /// </summary>
    [Parameter]
    public SwitchParameter StackTrace { get; set; }

    /// <summary>The most frames of each -StackTrace stack (eu-stack's default; strace -k has no limit).</summary>
    internal const int StackTraceFrames = 256;

    /// <summary>Bpf (the tracee never stops), Ptrace, or Auto: Bpf whenever the request and the privileges allow it.</summary>
    [Parameter]
    public SyscallEngine Engine { get; set; } = SyscallEngine.Auto;

    /// <summary>The eBPF engine's ring buffer in bytes (a power of two); events it cannot hold are reported as lost.</summary>
    [Parameter]
    [ValidateRange(4096, 1 << 30)]
    public int BufferSize { get; set; } = SyscallTraceOptions.DefaultBufferSize;

    [Parameter(ParameterSetName = LaunchSet)]
    public string? RedirectStandardInput { get; set; }

    [Parameter(ParameterSetName = LaunchSet)]
    public string? RedirectStandardOutput { get; set; }

    [Parameter(ParameterSetName = LaunchSet)]
    public string? RedirectStandardError { get; set; }

    private readonly List<int> _ids = new();
    private SyscallTraceOptions? _options;

    protected override void BeginProcessing()
    {
        try
        {
            _options = new SyscallTraceOptions
            {
                Filter = Syscall is { Length: > 0 } ? SyscallFilter.Parse(Syscall, SyscallArchitectureX64.Instance) : null,
                FailedOnly = FailedOnly,
                FollowForks = !NoFollow,
                Timeout = Timeout > TimeSpan.Zero ? Timeout : null,
                StringLimit = StringLimit,
                DecodeArguments = !Summary,
                BufferSize = BufferSize,
                WorkingDirectory = CurrentDirectory,
                StackFrames = StackTrace ? StackTraceFrames : 0,
            };
        }
        catch (ArgumentException ex)
        {
            ThrowEngineError(ex, Syscall, ErrorMapping.InvalidSyscallFilter, ErrorCategory.InvalidArgument);
        }
    }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == AttachSet) _ids.AddRange(Id);
    }

    protected override void EndProcessing()
    {
        var traces = new List<(object Target, ChannelReader<TraceEvent> Reader)>();
        // The eBPF engine counts -Summary in the kernel into this builder; for ptrace, Write adds each call.
        var summary = Summary ? new SyscallSummaryBuilder() : null;
        if (ParameterSetName == LaunchSet)
        {
            try
            {
                var (reader, _) = SyscallTraceEngines.Launch(Engine, ResolveProgram(FilePath), ArgumentList, _options!, Log, StopToken,
                    ResolveLaunchStream(RedirectStandardInput), ResolveLaunchStream(RedirectStandardOutput), ResolveLaunchStream(RedirectStandardError), summary);
                traces.Add((FilePath, Tracked(reader)));
            }
            catch (Exception ex) when (ex is LinuxTraceException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                ThrowEngineError(ex, FilePath);
            }
        }
        else
        {
            try
            {
                // Every target traced at once: by one eBPF trace, or each on its own ptrace tracer.
                var (attached, _) = SyscallTraceEngines.Attach(Engine, _ids, _options!, (ex, pid) => WriteEngineError(ex, pid), Log, StopToken, summary,
                    reader => TrackEngineWork(reader));
                traces.AddRange(attached.Select(t => ((object)t.Pid, t.Reader)));
            }
            catch (Exception ex) when (ex is LinuxTraceException or ArgumentException)
            {
                ThrowEngineError(ex, _ids.FirstOrDefault());
            }
        }
        void Write(TraceEvent e)
        {
            if (summary is null) WriteObject(e);
            else if (e is SyscallEvent s) summary.Add(s);
        }
        Drain(traces, Write);
        if (summary is not null)
            foreach (var row in summary.Build()) WriteObject(row);
    }

    private void Drain(List<(object Target, ChannelReader<TraceEvent> Reader)> traces, Action<TraceEvent> write)
    {
        var live = new List<(object Target, ChannelReader<TraceEvent> Reader)>(traces);
        while (live.Count > 0)
        {
            DrainLog();
            for (int i = live.Count - 1; i >= 0; i--)
            {
                var (target, reader) = live[i];
                while (reader.TryRead(out var e)) write(e);
                if (!reader.Completion.IsCompleted) continue;
                live.RemoveAt(i);
                try { reader.Completion.GetAwaiter().GetResult(); }
                catch (Exception ex) when (ex is LinuxTraceException or IOException or UnauthorizedAccessException)
                {
                    WriteEngineError(ex, target);
                }
            }
            if (live.Count == 0) break;
            // After Ctrl+C the tracers detach (or kill what they launched) and complete on their own: keep
            // draining until they have, so nothing is left stopped or traced when the command returns.
            try
            {
                Task.WhenAny(live.Select(t => t.Reader.WaitToReadAsync().AsTask())).Wait(100);
            }
            catch (AggregateException) { }
        }
        DrainLog();
    }

    // Tracked as soon as it exists, so Dispose waits for its detach even if a later WriteError throws (-ErrorAction Stop).
    private ChannelReader<TraceEvent> Tracked(ChannelReader<TraceEvent> reader)
    {
        TrackEngineWork(reader);
        return reader;
    }

}
