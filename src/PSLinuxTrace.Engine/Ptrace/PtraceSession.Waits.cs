using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Ptrace;

/// <summary>What a wait returned: a task and its status, or one of the reasons there is none.</summary>
public readonly record struct WaitResult(int Pid, WaitStatus Status)
{
    /// <summary>With a non-blocking wait: no task had anything to report.</summary>
    public bool Nothing => Pid == 0;
    /// <summary>This thread has no tracees or children left (ECHILD).</summary>
    public bool NoTasks => Pid == -Errno.ECHILD;
    /// <summary>The wait was ended by the cancellation given to <see cref="PtraceSession.WakeOn"/>.</summary>
    public bool Woken => Pid == WokenPid;

    internal const int WokenPid = int.MinValue;
}

public sealed partial class PtraceSession
{
    private const int WaitFlags = LibC.__WALL | LibC.__WNOTHREAD;
    private int _waker;
    private CancellationTokenRegistration _wakerRegistration;
    private CancellationToken _wakeToken;

    /// <summary>
    /// Makes a blocking <see cref="WaitAny"/> return (<see cref="WaitResult.Woken"/>) once
    /// <paramref name="cancel"/> fires, with no polling while tracees are idle: a child of this thread (a
    /// sleeping sh) is SIGKILLed then, and its exit ends the wait. It ignores the terminal's
    /// SIGINT/SIGQUIT/SIGTSTP (SIG_IGN survives exec), so Ctrl+C reaches us as a cancellation, not as its death.
    /// </summary>
    public void WakeOn(CancellationToken cancel)
    {
        OnOwnerThread();
        _wakeToken = cancel;
        _waker = StartWaker();
        _wakerRegistration = cancel.Register(() => { if (_waker > 0) LibC.kill(_waker, LibC.SIGKILL); });
    }

    private static int StartWaker() =>
        LibC.Spawn("/bin/sh", ["sh", "-c", "trap '' INT QUIT TSTP HUP; exec sleep 2147483647"], ["PATH=/usr/bin:/bin"], "/dev/null", "/dev/null", "/dev/null");

    private void StopWaker()
    {
        _wakerRegistration.Dispose();
        if (_waker <= 0) return;
        int w = _waker;
        _waker = 0;
        LibC.kill(w, LibC.SIGKILL);
        Raw(w, WaitFlags);
    }

    /// <summary>
    /// waitpid(-1) for this thread's tasks: blocks until one reports (or the <see cref="WakeOn"/>
    /// cancellation fires); with <paramref name="block"/> false returns <see cref="WaitResult.Nothing"/> at once when none has.
    /// </summary>
    public WaitResult WaitAny(bool block = true)
    {
        OnOwnerThread();
        while (true)
        {
            var (pid, status) = Raw(-1, WaitFlags | (block ? 0 : LibC.WNOHANG));
            if (pid < 0 && pid != -Errno.ECHILD) throw Errno.ToException(-pid, "waitpid");
            if (pid > 0 && pid == _waker)
            {
                _waker = 0; // reaped
                if (_wakeToken.IsCancellationRequested) return new WaitResult(WaitResult.WokenPid, default);
                _waker = StartWaker(); // killed from outside: keep a waker
                continue;
            }
            var result = new WaitResult(pid, new WaitStatus(status));
            if (pid > 0 && result.Status.Ended) Forget(pid);
            return result;
        }
    }

    /// <summary>
    /// Waits for a stop or the exit of <paramref name="tid"/>, polling so that a timeout and cancellation
    /// work; null on timeout or cancellation. ECHILD (not our tracee, or already collected) is ProcessNotFound.
    /// </summary>
    public WaitStatus? WaitFor(int tid, TimeSpan timeout, CancellationToken cancel = default)
    {
        OnOwnerThread();
        var deadline = DateTime.UtcNow + timeout;
        for (int spins = 0; ; spins++)
        {
            var (pid, raw) = Raw(tid, WaitFlags | LibC.WNOHANG);
            if (pid == tid)
            {
                var status = new WaitStatus(raw);
                if (status.Ended) Forget(tid);
                return status;
            }
            if (pid == -Errno.ECHILD) throw new ProcessNotFoundException(tid, $"Thread {tid} is no longer traced by us (it exited, or another waiter took its status).");
            if (pid < 0) throw Errno.ToException(-pid, "waitpid", tid);
            if (DateTime.UtcNow >= deadline || cancel.IsCancellationRequested) return null;
            // A stop usually comes within microseconds: spin first, then yield, then sleep.
            if (spins < 200) Thread.SpinWait(50);
            else Thread.Sleep(spins < 400 ? 0 : 1);
        }
    }

    private static (int Pid, int Status) Raw(int pid, int options)
    {
        while (true)
        {
            int r = LibC.waitpid(pid, out int status, options);
            if (r >= 0) return (r, status);
            int e = Errno.Last;
            if (e != Errno.EINTR) return (-e, 0);
        }
    }

    /// <summary>
    /// Starts <paramref name="program"/> (an absolute path) stopped before its execve, as this thread's
    /// child, and seizes it (<see cref="PtraceOptions.ExitKill"/> is added: a launched program never
    /// outlives its tracer). The caller sends SIGCONT when it is ready; the next call it makes is the execve.
    /// </summary>
    public int Launch(string program, IReadOnlyList<string> arguments, PtraceOptions options, string? workingDirectory = null,
        string? stdin = null, string? stdout = null, string? stderr = null)
    {
        OnOwnerThread();
        int pid = TraceeLauncher.SpawnStopped(program, arguments, stdin, stdout, stderr, workingDirectory);
        _launched.Add(pid);
        try
        {
            Seize(pid, options | PtraceOptions.ExitKill);
        }
        catch
        {
            LibC.kill(pid, LibC.SIGKILL);
            Raw(pid, WaitFlags);
            _launched.Remove(pid);
            throw;
        }
        return pid;
    }

    /// <summary>Whether this session launched <paramref name="tid"/>'s process.</summary>
    public bool Launched(int tid) => _launched.Contains(tid);
}
