using System.Collections.ObjectModel;

namespace PSLinuxTrace.Engine.Model;

/// <summary>What a trace event is; one value per <see cref="TraceEvent"/> type (engines may add more).</summary>
public enum TraceEventType { Syscall, Signal, ProcessStart, ProcessExit }

/// <summary>
/// What Start-SyscallTrace writes: one shape for every event, so a mixed stream shows as one table
/// and exports to CSV with the same columns on every row. Every event fills the properties declared
/// here (Name, Arguments, Result, Errno, Duration, Line); the derived records keep their extra typed
/// properties (SyscallEvent.Number, SignalEvent.SenderPid, ProcessExitEvent.ExitCode...). A derived
/// record that does not set Name, Arguments or Result gets them from its own fields.
/// </summary>
public abstract record TraceEvent
{
    private string? _name, _result;
    private TraceArguments? _arguments;

    public DateTime Timestamp { get; init; }
    /// <summary>Thread group id (the process).</summary>
    public int Pid { get; init; }
    /// <summary>Thread id (equal to Pid for the main thread).</summary>
    public int Tid { get; init; }
    public string ProcessName { get; init; } = "";
    public abstract TraceEventType EventType { get; }
    /// <summary>The system call (openat), the signal (SIGUSR1), "exit", or how the task began (fork, exec, attach...).</summary>
    public string Name { get => _name ?? DefaultName; init => _name = value; }
    /// <summary>The call's arguments as strace -y shows them; a signal's siginfo fields; a new task's parent and program.</summary>
    public TraceArguments Arguments { get => _arguments ?? DefaultArguments; init => _arguments = value; }
    /// <summary>A call's return value as strace shows it; the exit code or killing signal of an exit; "" otherwise.</summary>
    public string Result { get => _result ?? DefaultResult; init => _result = value; }
    /// <summary>The errno name (ENOENT) when a call failed, else null.</summary>
    public string? Errno { get; init; }
    /// <summary>Time from syscall entry to exit as the tracer saw it (includes the tracer's stop overhead); zero for other events.</summary>
    public TimeSpan Duration { get; init; }
    /// <summary>The event as strace prints it: <c>openat(AT_FDCWD&lt;/home/me&gt;, "/etc/passwd", O_RDONLY) = 3&lt;/etc/passwd&gt;</c>, <c>--- SIGUSR1 {...} ---</c>, <c>+++ exited with 0 +++</c>.</summary>
    public abstract string Line { get; }

    protected virtual string DefaultName => "";
    protected virtual TraceArguments DefaultArguments => TraceArguments.Empty;
    protected virtual string DefaultResult => "";

    public override string ToString() => Line;
}

/// <summary>
/// A trace event's arguments: a list of strings (index it, enumerate it, -contains) whose text is the
/// strace argument list, so Export-Csv and string conversion show "AT_FDCWD, \"/etc/passwd\", O_RDONLY".
/// </summary>
public sealed class TraceArguments(IList<string> items) : ReadOnlyCollection<string>(items)
{
    public static new readonly TraceArguments Empty = new([]);
    public static implicit operator TraceArguments(string[] items) => new(items);
    public override string ToString() => string.Join(", ", this);
}

/// <summary>One system call, as strace shows it, with the raw values beside the decoded ones.</summary>
public sealed record SyscallEvent : TraceEvent
{
    public override TraceEventType EventType => TraceEventType.Syscall;
    public int Number { get; init; }
    /// <summary>The six argument registers.</summary>
    public ulong[] RawArguments { get; init; } = [];
    /// <summary>The raw return value (-errno on failure); null for an unfinished call.</summary>
    public long? ReturnValue { get; init; }
    /// <summary>True when the call had not returned when tracing stopped (or the thread died in it).</summary>
    public bool Unfinished { get; init; }
    /// <summary>With -StackTrace: the user stack that made the call, innermost frame first (strace -k); else null.</summary>
    public StackFrame[]? StackTrace { get; init; }

    /// <summary>The strace line: <c>openat(AT_FDCWD&lt;/home/me&gt;, "/etc/passwd", O_RDONLY) = 3&lt;/etc/passwd&gt;</c>.</summary>
    public override string Line => $"{Name}({Arguments}) = {Result}";
}

/// <summary>A signal the tracee was about to receive (signal-delivery stop), passed on unchanged.</summary>
public sealed record SignalEvent : TraceEvent
{
    public override TraceEventType EventType => TraceEventType.Signal;
    public string Signal { get; init; } = "";
    public int SignalNumber { get; init; }
    /// <summary>si_code as strace names it (SI_USER, SI_TKILL, SI_KERNEL, CLD_EXITED...).</summary>
    public string Code { get; init; } = "";
    /// <summary>The sending process for SI_USER/SI_TKILL/SI_QUEUE and SIGCHLD, else 0.</summary>
    public int SenderPid { get; init; }
    public int SenderUid { get; init; }
    /// <summary>True when it was delivered to the tracee; false when tracing ended before (the signal stays pending).</summary>
    public bool Delivered { get; init; } = true;

    protected override string DefaultName => Signal;
    protected override TraceArguments DefaultArguments => new[] { $"si_signo={Signal}", $"si_code={Code}", $"si_pid={SenderPid}", $"si_uid={SenderUid}" };
    protected override string DefaultResult => Delivered ? "delivered" : "pending";
    public override string Line => $"--- {Signal} {{{Arguments}}} ---";
}

/// <summary>A traced thread or process ended.</summary>
public sealed record ProcessExitEvent : TraceEvent
{
    public override TraceEventType EventType => TraceEventType.ProcessExit;
    /// <summary>The exit code when it exited normally, else null.</summary>
    public int? ExitCode { get; init; }
    /// <summary>The terminating signal's name when a signal killed it, else null.</summary>
    public string? Signal { get; init; }
    public bool CoreDumped { get; init; }
    /// <summary>True for a thread other than the thread group leader.</summary>
    public bool IsThread { get; init; }

    protected override string DefaultName => "exit";
    protected override string DefaultResult => Signal is null ? $"{ExitCode}" : Signal + (CoreDumped ? " (core dumped)" : "");
    public override string Line => Signal is null ? $"+++ exited with {ExitCode} +++" : $"+++ killed by {Signal}{(CoreDumped ? " (core dumped)" : "")} +++";
}

/// <summary>How a traced task came to be.</summary>
public enum ProcessStartKind { Launch, Attach, Fork, VFork, Clone, Thread, Exec }

/// <summary>A new traced task: the launched program, an attached thread, a forked child or a new thread; or an execve.</summary>
public sealed record ProcessStartEvent : TraceEvent
{
    public override TraceEventType EventType => TraceEventType.ProcessStart;
    public ProcessStartKind Kind { get; init; }
    /// <summary>The task that forked/cloned it (0 for Launch/Attach).</summary>
    public int ParentTid { get; init; }
    /// <summary>For Launch and Exec: the program now running (for Exec from /proc/PID/exe).</summary>
    public string? ExecutablePath { get; init; }

    protected override string DefaultName => Kind.ToString().ToLowerInvariant();
    protected override TraceArguments DefaultArguments =>
        new[] { ParentTid > 0 ? $"parent={ParentTid}" : null, ExecutablePath is null ? null : $"\"{ExecutablePath}\"" }.OfType<string>().ToArray();
    public override string Line => Kind switch
    {
        ProcessStartKind.Launch => $"+++ launched {ExecutablePath} as {Tid} +++",
        ProcessStartKind.Attach => $"+++ attached to {Tid} +++",
        ProcessStartKind.Exec => $"+++ {Tid} runs {ExecutablePath} +++",
        _ => $"+++ {Name} {Tid} (parent {ParentTid}) +++",
    };
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
