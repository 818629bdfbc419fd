using PSLinuxTrace.Engine.Syscalls;

namespace PSLinuxTrace.Engine.Tracing;

/// <summary>What to trace and how.</summary>
public sealed record SyscallTraceOptions
{
    /// <summary>Which calls to report (null: all).</summary>
    public SyscallFilter? Filter { get; init; }
    /// <summary>Follow forks, vforks, clones and new threads (strace -f). Attach always takes every existing thread.</summary>
    public bool FollowForks { get; init; } = true;
    /// <summary>Report only calls that failed (strace -Z).</summary>
    public bool FailedOnly { get; init; }
    /// <summary>Stop after this long: detach from attached processes, kill launched ones.</summary>
    public TimeSpan? Timeout { get; init; }
    /// <summary>Bytes of data buffers to show (strace -s).</summary>
    public int StringLimit { get; init; } = 32;
    /// <summary>Decode arguments (off: names, raw arguments and return values only, as for -Summary).</summary>
    public bool DecodeArguments { get; init; } = true;
    /// <summary>Run the tracing thread on the tracee's CPU (a cross-CPU wake-up per stop costs 55-105 µs on these VMs).</summary>
    public bool PinToTraceeCpu { get; init; } = true;
    /// <summary>
    /// With a filter on a launched program, let the kernel stop the tracee only for the selected calls
    /// (seccomp-bpf SECCOMP_RET_TRACE + PTRACE_O_TRACESECCOMP, as strace --seccomp-bpf).
    /// </summary>
    public bool UseSeccomp { get; init; } = true;
    /// <summary>Where a launched program starts, and what a relative program path is relative to (default: this process's directory).</summary>
    public string? WorkingDirectory { get; init; }
    /// <summary>Give every system call the user stack that made it (strace -k), at most this many frames (0: none).</summary>
    public int StackFrames { get; init; }
    /// <summary>Events buffered between the tracer thread and the consumer.</summary>
    public int ChannelCapacity { get; init; } = 4096;
    public ISyscallArchitecture Architecture { get; init; } = SyscallArchitectureX64.Instance;
}
