namespace PSLinuxTrace.Engine.Model;

/// <summary>What Start-SyscallTrace writes: one of the event records below.</summary>
public abstract record TraceEvent
{
    public DateTime Timestamp { get; init; }
    /// <summary>Thread group id (the process).</summary>
    public int Pid { get; init; }
    /// <summary>Thread id (equal to Pid for the main thread).</summary>
    public int Tid { get; init; }
    public string ProcessName { get; init; } = "";
    /// <summary>
    /// The event's number in its trace, from 1. The eBPF engine counts lost events too: a gap of N
    /// before an event is the <see cref="LostEventsEvent"/> of Count N just before it. 0 from the
    /// ptrace engine, which loses nothing.
    /// </summary>
    public ulong Sequence { get; init; }
}

/// <summary>One system call, as strace shows it, with the raw values beside the decoded ones.</summary>
public sealed record SyscallEvent : TraceEvent
{
    public string Name { get; init; } = "";
    public int Number { get; init; }
    /// <summary>The arguments decoded the way strace -y shows them (strings, flag names, fds with paths).</summary>
    public string[] Arguments { get; init; } = [];
    /// <summary>The six argument registers.</summary>
    public ulong[] RawArguments { get; init; } = [];
    /// <summary>The raw return value (-errno on failure); null for an unfinished call.</summary>
    public long? ReturnValue { get; init; }
    /// <summary>The return value as strace shows it ("3&lt;/etc/passwd&gt;", "0x7f..", "-1 ENOENT (...)", "?").</summary>
    public string Result { get; init; } = "";
    /// <summary>The errno name (ENOENT) when the call failed, else null.</summary>
    public string? Errno { get; init; }
    /// <summary>Time from syscall entry to exit as the tracer saw it (includes the tracer's stop overhead).</summary>
    public TimeSpan Duration { get; init; }
    /// <summary>True when the call had not returned when tracing stopped (or the thread died in it).</summary>
    public bool Unfinished { get; init; }

    /// <summary>The strace line: <c>openat(AT_FDCWD, "/etc/passwd", O_RDONLY) = 3</c>.</summary>
    public string Line => $"{Name}({string.Join(", ", Arguments)}) = {Result}";

    public override string ToString() => Line;
}

/// <summary>A signal the tracee was about to receive (signal-delivery stop), passed on unchanged.</summary>
public sealed record SignalEvent : TraceEvent
{
    public string Signal { get; init; } = "";
    public int SignalNumber { get; init; }
    /// <summary>si_code as strace names it (SI_USER, SI_TKILL, SI_KERNEL, CLD_EXITED...).</summary>
    public string Code { get; init; } = "";
    /// <summary>The sending process for SI_USER/SI_TKILL/SI_QUEUE and SIGCHLD, else 0.</summary>
    public int SenderPid { get; init; }
    public int SenderUid { get; init; }
    /// <summary>True when it was delivered to the tracee; false when tracing ended before (the signal stays pending).</summary>
    public bool Delivered { get; init; } = true;

    public override string ToString() => $"--- {Signal} {{si_code={Code}, si_pid={SenderPid}}} ---";
}

/// <summary>A traced thread or process ended.</summary>
public sealed record ProcessExitEvent : TraceEvent
{
    /// <summary>The exit code when it exited normally, else null.</summary>
    public int? ExitCode { get; init; }
    /// <summary>The terminating signal's name when a signal killed it, else null.</summary>
    public string? Signal { get; init; }
    public bool CoreDumped { get; init; }
    /// <summary>True for a thread other than the thread group leader.</summary>
    public bool IsThread { get; init; }

    public override string ToString() => Signal is null ? $"+++ exited with {ExitCode} +++" : $"+++ killed by {Signal}{(CoreDumped ? " (core dumped)" : "")} +++";
}

/// <summary>
/// Events the eBPF engine's kernel half could not hand over (its ring buffer was full: -BufferSize
/// sizes it), written where the loss was seen. Pid and Tid are 0: the lost events' tasks are unknown.
/// </summary>
public sealed record LostEventsEvent : TraceEvent
{
    /// <summary>How many events were lost here.</summary>
    public long Count { get; init; }
    /// <summary>The CPU whose events were lost; -1 when only the kernel's totals at the end of the trace tell.</summary>
    public int Cpu { get; init; }

    public override string ToString() => $"--- {Count} event(s) lost on CPU {Cpu} ---";
}

/// <summary>Which engine traced: ptrace (the tracee stops at every call) or eBPF (it never stops).</summary>
public enum TraceEngine { Ptrace, Bpf }

/// <summary>How a traced task came to be.</summary>
public enum ProcessStartKind { Launch, Attach, Fork, VFork, Clone, Thread, Exec }

/// <summary>A new traced task: the launched program, an attached thread, a forked child or a new thread; or an execve.</summary>
public sealed record ProcessStartEvent : TraceEvent
{
    public ProcessStartKind Kind { get; init; }
    /// <summary>The task that forked/cloned it (0 for Launch/Attach).</summary>
    public int ParentTid { get; init; }
    /// <summary>For Exec: the program now running (from /proc/PID/exe).</summary>
    public string? ExecutablePath { get; init; }
    /// <summary>The engine that traces this task (say which on Launch and Attach events).</summary>
    public TraceEngine Engine { get; init; }

    public override string ToString() => $"+++ {Kind} {Tid} (parent {ParentTid}) +++";
}

/// <summary>One line of strace -c: the totals for one system call name.</summary>
public sealed record SyscallSummary
{
    public string Name { get; init; } = "";
    public long Calls { get; init; }
    public long Errors { get; init; }
    public TimeSpan TotalTime { get; init; }
    public TimeSpan AverageTime { get; init; }
    /// <summary>Share of the total traced syscall time, in percent.</summary>
    public double PercentTime { get; init; }
}
