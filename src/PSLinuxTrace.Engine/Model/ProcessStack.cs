namespace PSLinuxTrace.Engine.Model;

/// <summary>
/// Get-ProcessStack's output: every thread of a running process with its symbolized backtrace, the same
/// thread and frame objects Read-CoreDump gives, from one short pause of the process.
/// </summary>
public sealed record ProcessStack
{
    public int Pid { get; init; }
    public string ProcessName { get; init; } = "";
    public string CommandLine { get; init; } = "";
    /// <summary>When the threads were stopped (UTC).</summary>
    public DateTime Timestamp { get; init; }
    public required CoreThread[] Threads { get; init; }
    /// <summary>How long the process was stopped: only to copy registers and stacks, before any unwinding.</summary>
    public TimeSpan PausedFor { get; init; }
    /// <summary>The whole capture: the pause, then unwinding and symbolizing while the process ran.</summary>
    public TimeSpan Duration { get; init; }
    public string[] Warnings { get; init; } = [];

    public override string ToString() => $"{ProcessName}[{Pid}] ({Threads.Length} threads, paused {PausedFor.TotalMilliseconds:F2} ms)";
}
