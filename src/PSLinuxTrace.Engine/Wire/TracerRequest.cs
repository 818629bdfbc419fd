using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Wire;

/// <summary>The jobs the tracer process runs.</summary>
internal enum TracerOperation
{
    AttachTrace,
    LaunchTrace,
    LiveSnapshot,
    LaunchSnapshot,
    CaptureStacks,
}

/// <summary>One job for the tracer process, as it crosses the pipe (JSON).</summary>
internal sealed record TracerRequest
{
    public TracerOperation Operation { get; init; }
    /// <summary>The user's process (pwsh): never syscall-traced, since its threads read the events.</summary>
    public int ClientPid { get; init; }
    /// <summary>The lowest log level the client shows.</summary>
    public int MinimumLogLevel { get; init; }
    public int Pid { get; init; }
    /// <summary>For a job about many processes (CaptureStacks).</summary>
    public int[] Pids { get; init; } = [];
    public string? Program { get; init; }
    public string[] Arguments { get; init; } = [];
    /// <summary>Where a launched snapshot's program starts (the user's current location).</summary>
    public string? WorkingDirectory { get; init; }
    public string? StandardInput { get; init; }
    public string? StandardOutput { get; init; }
    public string? StandardError { get; init; }
    public TraceOptionsData? Trace { get; init; }
    public string? OutputPath { get; init; }
    public SnapshotMemory Include { get; init; }
    public SnapshotMethod Method { get; init; }
}

/// <summary>A syscall trace's options without their objects (the filter as the selected numbers); Tracing/ converts them.</summary>
internal sealed record TraceOptionsData
{
    public int[]? Syscalls { get; init; }
    public bool FollowForks { get; init; }
    public bool FailedOnly { get; init; }
    public TimeSpan? Timeout { get; init; }
    public int StringLimit { get; init; }
    public bool DecodeArguments { get; init; }
    public bool PinToTraceeCpu { get; init; }
    public bool UseSeccomp { get; init; }
    public string? WorkingDirectory { get; init; }
    public int StackFrames { get; init; }
    public int ChannelCapacity { get; init; }
}

/// <summary>An engine exception, as it crosses the pipe; <see cref="RemoteError"/> rebuilds it.</summary>
internal sealed record ErrorInfo
{
    /// <summary>For a TargetError frame: the process the error is about.</summary>
    public int Target { get; init; }
    public string Type { get; init; } = "";
    public string Message { get; init; } = "";
    public int Errno { get; init; }
    public int? ProcessId { get; init; }
    public string? MissingCapability { get; init; }
    public string? RecommendedAction { get; init; }
    public int? OwnerPid { get; init; }
    public string? Feature { get; init; }
    public string? MinimumVersion { get; init; }
    public string? Detail { get; init; }
    public bool ByKernel { get; init; }
    public string? Call { get; init; }
    public string? Context { get; init; }
    public string? FileName { get; init; }
}
