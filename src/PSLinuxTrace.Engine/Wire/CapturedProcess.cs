using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Wire;

/// <summary>One thread as it was at the pause: its registers and the bytes of its stack from below the stack pointer up.</summary>
public sealed record CapturedThread
{
    public int Tid { get; init; }
    /// <summary>The thread's name (/proc/PID/task/TID/comm).</summary>
    public string Name { get; init; } = "";
    public required X64Registers Registers { get; init; }
    /// <summary>The address of <see cref="Stack"/>'s first byte.</summary>
    public ulong StackStart { get; init; }
    public byte[] Stack { get; init; } = [];
}

/// <summary>A process's threads as one pause caught them, and its mappings right after (what the unwinder needs offline).</summary>
public sealed record CapturedProcess
{
    public int Pid { get; init; }
    public string ProcessName { get; init; } = "";
    public string CommandLine { get; init; } = "";
    public DateTime Timestamp { get; init; }
    public required CapturedThread[] Threads { get; init; }
    /// <summary>/proc/PID/maps, read just after the pause.</summary>
    public string Maps { get; init; } = "";
    /// <summary>/proc/PID/auxv (where the program's headers are).</summary>
    public byte[] Auxv { get; init; } = [];
    public TimeSpan PausedFor { get; init; }
    public string[] Warnings { get; init; } = [];
}
