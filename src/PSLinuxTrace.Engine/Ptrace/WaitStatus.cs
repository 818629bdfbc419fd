using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Ptrace;

/// <summary>What a ptrace-stop reports beyond its signal (status &gt;&gt; 16; linux/ptrace.h PTRACE_EVENT_*).</summary>
public enum PtraceEvent
{
    None = 0,
    Fork = LibC.PTRACE_EVENT_FORK,
    VFork = LibC.PTRACE_EVENT_VFORK,
    Clone = LibC.PTRACE_EVENT_CLONE,
    Exec = LibC.PTRACE_EVENT_EXEC,
    VForkDone = LibC.PTRACE_EVENT_VFORK_DONE,
    Exit = LibC.PTRACE_EVENT_EXIT,
    Seccomp = LibC.PTRACE_EVENT_SECCOMP,
    /// <summary>PTRACE_INTERRUPT's stop, or a group-stop of a seized tracee (then StopSignal is the stopping signal).</summary>
    Stop = LibC.PTRACE_EVENT_STOP,
}

/// <summary>
/// A waitpid status, read the way ptrace(2) "Stopped states" lays it out: an exit, a death by signal,
/// or one of the four ptrace-stops (signal-delivery, group, syscall with PTRACE_O_TRACESYSGOOD, event).
/// </summary>
public readonly record struct WaitStatus(int Raw)
{
    public bool Exited => (Raw & 0x7f) == 0;
    public int ExitCode => (Raw >> 8) & 0xff;
    public bool Signaled => ((sbyte)((Raw & 0x7f) + 1) >> 1) > 0;
    public int TermSignal => Raw & 0x7f;
    public bool CoreDumped => (Raw & 0x80) != 0;
    /// <summary>The task is gone: it exited or a signal killed it.</summary>
    public bool Ended => Exited || Signaled;

    public bool Stopped => (Raw & 0xff) == 0x7f;
    public int StopSignal => Stopped ? (Raw >> 8) & 0xff : 0;
    public PtraceEvent Event => Stopped ? (PtraceEvent)((Raw >> 16) & 0xffff) : PtraceEvent.None;

    /// <summary>A syscall-entry or -exit stop (SIGTRAP | 0x80 under PTRACE_O_TRACESYSGOOD).</summary>
    public bool IsSyscallStop => Stopped && StopSignal == (LibC.SIGTRAP | 0x80);
    /// <summary>A group-stop of a seized tracee: PTRACE_EVENT_STOP with a stopping signal.</summary>
    public bool IsGroupStop => Event == PtraceEvent.Stop && StopSignal is LibC.SIGSTOP or LibC.SIGTSTP or LibC.SIGTTIN or LibC.SIGTTOU;
    /// <summary>A signal about to be delivered: the tracer passes it on (or not) when it resumes the task.</summary>
    public bool IsSignalDelivery => Stopped && Event == PtraceEvent.None && !IsSyscallStop;

    public override string ToString() =>
        Exited ? $"exited with {ExitCode}" :
        Signaled ? $"killed by {Signals.Name(TermSignal)}{(CoreDumped ? " (core dumped)" : "")}" :
        IsSyscallStop ? "syscall stop" :
        Event != PtraceEvent.None ? $"event stop {Event} ({Signals.Name(StopSignal)})" :
        Stopped ? $"signal-delivery stop {Signals.Name(StopSignal)}" : $"status 0x{Raw:x}";
}

/// <summary>PTRACE_SEIZE / PTRACE_SETOPTIONS options (linux/ptrace.h PTRACE_O_*).</summary>
[Flags]
public enum PtraceOptions
{
    None = 0,
    SysGood = LibC.PTRACE_O_TRACESYSGOOD,
    Fork = LibC.PTRACE_O_TRACEFORK,
    VFork = LibC.PTRACE_O_TRACEVFORK,
    Clone = LibC.PTRACE_O_TRACECLONE,
    Exec = LibC.PTRACE_O_TRACEEXEC,
    Seccomp = LibC.PTRACE_O_TRACESECCOMP,
    /// <summary>The kernel kills the tracee if the tracer exits: for programs we launched.</summary>
    ExitKill = LibC.PTRACE_O_EXITKILL,
    FollowChildren = Fork | VFork | Clone,
}
