using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Procfs;
using Calls = PSLinuxTrace.Engine.Interop.Ptrace;

namespace PSLinuxTrace.Engine.Ptrace;

/// <summary>
/// Every ptrace request and every wait of one job. The kernel ties a tracee to the thread that attached
/// it, so a session belongs to the thread that made it and refuses calls from any other. It knows what
/// it traces and what it launched, so Dispose leaves nothing behind whatever happened before: launched
/// programs killed and reaped, attached tasks detached. Waits use __WALL | __WNOTHREAD: only this
/// thread's tracees and children, never a child another thread started.
/// Sessions exist only in the tracer process (see Host/TracerHost): in the user's pwsh the .NET runtime
/// waits for the children it started and would take their stops.
/// </summary>
public sealed partial class PtraceSession : IDisposable
{
    private readonly int _owner = Environment.CurrentManagedThreadId;
    private readonly HashSet<int> _traced = new();
    private readonly HashSet<int> _launched = new();
    private readonly ILogger _log;
    private bool _disposed;

    public PtraceSession(ILogger? log = null)
    {
        _log = log ?? NullLogger.Instance;
        ThreadId = LibC.gettid();
    }

    /// <summary>The kernel thread id of the tracer: what a tracee's TracerPid shows.</summary>
    public int ThreadId { get; }

    /// <summary>Tasks this session traces now.</summary>
    public IReadOnlyCollection<int> Traced => _traced;

    private void OnOwnerThread()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Environment.CurrentManagedThreadId != _owner)
            throw new InvalidOperationException("A ptrace session is used from a thread other than the one that made it (the kernel ties tracees to their tracer thread).");
    }

    /// <summary>
    /// PTRACE_SEIZE: traced without a stop and without a signal the task could see. A task another
    /// tracer holds is TargetBusy, naming it; any other refusal is explained by the one errno check.
    /// </summary>
    public void Seize(int tid, PtraceOptions options)
    {
        OnOwnerThread();
        if (LibC.ptrace(LibC.PTRACE_SEIZE, tid, 0, (int)options) == 0)
        {
            _traced.Add(tid);
            return;
        }
        int e = Errno.Last;
        if (e == Errno.EPERM && TracerOf(tid) is int tracer and > 0)
            throw new TargetBusyException($"Process {tid} is already traced by process {tracer} ({Describe(tracer)}); a process can have only one tracer.", tracer);
        throw Errno.ToException(e, "ptrace(PTRACE_SEIZE)", tid);
    }

    /// <summary>
    /// The process tracing <paramref name="pid"/>, or 0. TracerPid names the tracing thread; a user
    /// recognizes the process (its thread-group id), so that is what is returned.
    /// </summary>
    public static int TracerOf(int pid)
    {
        try
        {
            int tracer = ProcFs.ReadStatus(pid).TracerPid;
            if (tracer <= 0) return 0;
            try { return ProcFs.ReadStatus(tracer).Tgid is int tgid and > 0 ? tgid : tracer; }
            catch (LinuxTraceException) { return tracer; }
        }
        catch (LinuxTraceException) { return 0; }
    }

    private static string Describe(int pid)
    {
        string comm;
        try { comm = ProcFs.ReadComm(pid); }
        catch (LinuxTraceException) { return "?"; }
        // Our own tracer process: say whose it is, which is what a user can act on.
        if (comm.StartsWith("pslinuxtrace-tr", StringComparison.Ordinal))
        {
            try { return $"another PSLinuxTrace command, run by process {ProcFs.ReadStatus(pid).ParentPid}"; }
            catch (LinuxTraceException) { return "another PSLinuxTrace command"; }
        }
        return comm;
    }

    /// <summary>Marks a task as traced without seizing it: a child the kernel attached for us (PTRACE_O_TRACECLONE and friends).</summary>
    public void Adopt(int tid)
    {
        OnOwnerThread();
        _traced.Add(tid);
    }

    /// <summary>Forgets a task whose exit was collected.</summary>
    public void Forget(int tid)
    {
        _traced.Remove(tid);
        _launched.Remove(tid);
    }

    public void Interrupt(int tid) { OnOwnerThread(); Calls.Interrupt(tid); }

    /// <summary>PTRACE_INTERRUPT; false when the task is gone (ESRCH).</summary>
    public bool TryInterrupt(int tid)
    {
        OnOwnerThread();
        return LibC.ptrace(LibC.PTRACE_INTERRUPT, tid, 0, 0) == 0;
    }

    public void Continue(int tid, int signal = 0) { OnOwnerThread(); Calls.Cont(tid, signal); }
    public void ContinueToSyscall(int tid, int signal = 0) { OnOwnerThread(); Calls.Syscall(tid, signal); }
    public void SingleStep(int tid, int signal = 0) { OnOwnerThread(); Calls.SingleStep(tid, signal); }
    public void Listen(int tid) { OnOwnerThread(); Calls.Listen(tid); }

    /// <summary>
    /// Resumes a stopped task (to the next syscall stop when <paramref name="toSyscall"/>). A task
    /// killed meanwhile is not an error: its exit follows in a wait.
    /// </summary>
    public void Resume(int tid, bool toSyscall, int signal = 0)
    {
        OnOwnerThread();
        long r = LibC.ptrace(toSyscall ? LibC.PTRACE_SYSCALL : LibC.PTRACE_CONT, tid, 0, signal);
        if (r == -1 && Errno.Last != Errno.ESRCH) throw Errno.ToException(Errno.Last, toSyscall ? "ptrace(PTRACE_SYSCALL)" : "ptrace(PTRACE_CONT)", tid);
    }

    /// <summary>PTRACE_DETACH, handing <paramref name="signal"/> back; false when the task is gone or not in a stop (ESRCH).</summary>
    public bool Detach(int tid, int signal = 0)
    {
        OnOwnerThread();
        bool done = Calls.Detach(tid, signal);
        if (done) _traced.Remove(tid);
        return done;
    }

    public UserRegsX64 GetRegisters(int tid) { OnOwnerThread(); return Calls.GetRegs(tid); }
    public void SetRegisters(int tid, UserRegsX64 regs) { OnOwnerThread(); Calls.SetRegs(tid, regs); }
    public byte[] GetFpRegisters(int tid) { OnOwnerThread(); return Calls.GetFpRegs(tid); }
    public byte[]? GetRegisterSet(int tid, int type) { OnOwnerThread(); return Calls.GetRegSet(tid, type); }
    public ulong GetEventMessage(int tid) { OnOwnerThread(); return Calls.GetEventMsg(tid); }
    public byte[]? GetSignalInfo(int tid) { OnOwnerThread(); return Calls.GetSigInfo(tid); }
    internal SyscallInfo GetSyscallInfo(int tid) { OnOwnerThread(); return PtraceSyscallInfo.Get(tid); }

    /// <summary>SIGKILLs a task this session traces and collects its exit, past any stop it reports first, so no traced zombie stays.</summary>
    public void KillAndReap(int tid, TimeSpan timeout)
    {
        OnOwnerThread();
        LibC.kill(tid, LibC.SIGKILL);
        var deadline = DateTime.UtcNow + timeout;
        try
        {
            while (DateTime.UtcNow < deadline)
                if (WaitFor(tid, deadline - DateTime.UtcNow) is not { } s || s.Ended) break;
        }
        catch (ProcessNotFoundException) { }
        Forget(tid);
    }

    public void Dispose()
    {
        if (_disposed || Environment.CurrentManagedThreadId != _owner) return;
        try
        {
            // A safety net: each job releases what it holds itself; this only catches what an error skipped.
            foreach (int tid in _launched.ToList()) KillAndReap(tid, TimeSpan.FromSeconds(5));
            foreach (int tid in _traced.ToList())
            {
                if (Calls.Detach(tid, 0)) { _traced.Remove(tid); continue; }
                // Running (seized, never stopped) or dying: stop it to detach it, or collect its exit.
                if (!TryInterrupt(tid)) { _traced.Remove(tid); continue; }
                if (WaitFor(tid, TimeSpan.FromSeconds(2)) is { Stopped: true }) Calls.Detach(tid, 0);
                _traced.Remove(tid);
            }
            if (_traced.Count > 0) _log.LogDebug("Tasks {Tids} were still traced when the session ended.", string.Join(", ", _traced));
        }
        catch (LinuxTraceException ex)
        {
            _log.LogDebug("Releasing the session's tasks: {Message}", ex.Message);
        }
        finally
        {
            StopWaker();
            _disposed = true;
        }
    }
}
