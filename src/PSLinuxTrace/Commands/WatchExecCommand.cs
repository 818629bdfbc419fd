using System.Management.Automation;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Completion;
using PSLinuxTrace.Engine;
using PSLinuxTrace.Engine.Exec;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Commands;

/// <summary>Watch-Exec: every execve/execveat on the machine, through eBPF, until Ctrl+C, -Timeout or -Count.</summary>
[Cmdlet(VerbsCommon.Watch, "Exec", DefaultParameterSetName = AllSet)]
[OutputType(typeof(ExecEvent))]
public sealed class WatchExecCommand : PSLinuxTraceCmdlet
{
    private const string AllSet = "All", ContainerSet = "ContainerOf", NamespaceSet = "PidNamespace";

    /// <summary>Globs on the executable path: with a '/' against the whole path, else against the file name.</summary>
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    /// <summary>Only execs by this (real) user id; filtered in the kernel.</summary>
    [Parameter]
    [Alias("Uid")]
    public uint UserId { get; set; }

    /// <summary>Only execs by children of this process; filtered in the kernel.</summary>
    [Parameter]
    [Alias("PPID")]
    [ValidateRange(1, int.MaxValue)]
    public int ParentId { get; set; }

    /// <summary>Only execs in the pid namespace of this process (a container's init, for example).</summary>
    [Parameter(Mandatory = true, ParameterSetName = ContainerSet)]
    [ValidateRange(1, int.MaxValue)]
    public int ContainerOf { get; set; }

    /// <summary>Only execs in the pid namespace with this inode number (as in /proc/PID/ns/pid).</summary>
    [Parameter(Mandatory = true, ParameterSetName = NamespaceSet)]
    [ValidateRange(1u, uint.MaxValue)]
    public uint PidNamespace { get; set; }

    /// <summary>Also capture each exec's environment (envp).</summary>
    [Parameter]
    public SwitchParameter IncludeEnvironment { get; set; }

    /// <summary>Ring buffer size in bytes: a power of two (default 16 MiB).</summary>
    [Parameter]
    [ValidateRange(4096, 1 << 30)]
    public int BufferSize { get; set; } = ExecWatchOptions.DefaultBufferSize;

    /// <summary>Stop after this many events.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int Count { get; set; }

    /// <summary>Stop after this long (a number is seconds).</summary>
    [Parameter]
    [SecondsToTimeSpan]
    public TimeSpan Timeout { get; set; }

    private ExecWatcher? _watcher;

    protected override void EndProcessing()
    {
        if ((BufferSize & (BufferSize - 1)) != 0)
            ThrowEngineError(new ArgumentException($"-BufferSize must be a power of two; got {BufferSize}."), BufferSize);
        bool has(string p) => MyInvocation.BoundParameters.ContainsKey(p);
        if (has(nameof(Timeout)) && Timeout <= TimeSpan.Zero)
            ThrowEngineError(new ArgumentException($"-Timeout must be positive; got {Timeout}."), Timeout);
        ExecWatchOptions options;
        try
        {
            uint? pidns = ParameterSetName switch
            {
                ContainerSet => ExecWatcher.PidNamespaceOf(ContainerOf),
                NamespaceSet => PidNamespace,
                _ => null,
            };
            options = new ExecWatchOptions
            {
                Name = Name,
                UserId = has(nameof(UserId)) ? UserId : null,
                ParentId = has(nameof(ParentId)) ? ParentId : null,
                PidNamespace = pidns,
                IncludeEnvironment = IncludeEnvironment,
                BufferSize = BufferSize,
                Count = Count,
                Timeout = has(nameof(Timeout)) ? Timeout : null,
            };
            _watcher = ExecWatcher.Open(options, Log);
        }
        catch (Exception ex) when (ex is LinuxTraceException or ArgumentException)
        {
            ThrowEngineError(ex, ParameterSetName == ContainerSet ? ContainerOf : Name);
            return;
        }
        Log.LogInformation("Watching execve/execveat (BPF programs {Ids}){Filters}; press Ctrl+C to stop.",
            string.Join(", ", _watcher.ProgramIds), Describe(options));
        try
        {
            DrainChannel(_watcher.Start(StopToken), WriteObject);
        }
        catch (LinuxTraceException ex)
        {
            ThrowEngineError(ex, null);
        }
        finally
        {
            _watcher.Stop();
            ExecWatchSummary s = _watcher.Summary;
            Log.LogInformation("Watched for {Duration}: {Events} exec(s) written, {Lost} lost (ring buffer full), {Faulted} argument read(s) faulted.",
                s.Duration, s.Events, s.LostEvents, s.FaultedReads);
            if (s.LostEvents > 0)
                Log.LogWarning("{Lost} exec record(s) were lost because the ring buffer was full; rerun with a larger -BufferSize.", s.LostEvents);
            DrainLog();
        }
    }

    private static string Describe(ExecWatchOptions o)
    {
        var parts = new List<string>();
        if (o.Name is not null) parts.Add("name " + string.Join(", ", o.Name));
        if (o.UserId is { } u) parts.Add($"uid {u}");
        if (o.ParentId is { } p) parts.Add($"parent {p}");
        if (o.PidNamespace is { } n) parts.Add($"pid namespace {n}");
        return parts.Count == 0 ? "" : " for " + string.Join("; ", parts);
    }

    protected override void DisposeResources() => _watcher?.Dispose();
}
