using System.Diagnostics;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;

namespace PSLinuxTrace.Engine.Snapshot;

/// <summary>
/// The CloneTwin method's twin: a copy-on-write copy of the stopped process, made by an injected
/// clone() (exit signal 0, so the process is never signalled about it and wait() without __WALL never
/// returns it), read while the process runs on, then killed and, through an injected wait4(), reaped by
/// the process (its parent), so no zombie stays.
/// </summary>
internal sealed class CloneTwin
{
    private const int SYS_clone = 56, SYS_wait4 = 61;
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);
    private readonly PtraceSession _session;
    private readonly ILogger _log;
    private readonly int _pid;

    public CloneTwin(PtraceSession session, int pid, ILogger log)
    {
        _session = session;
        _pid = pid;
        _log = log;
    }

    /// <summary>
    /// Makes the stopped thread <paramref name="tid"/> clone the twin; returns its pid, stopped and traced.
    /// The pid goes to <paramref name="reported"/> the moment the kernel reports it, so that a process
    /// killed before the injected call returns still leaves a twin the caller kills and reaps.
    /// </summary>
    public int Make(SyscallInjector injector, int tid, Action<int> reported)
    {
        int twin = 0;
        string? exe = ProcFs.ReadExeLink(_pid);
        ulong since = BootTicksNow() - 1;
        long r;
        try
        {
            // clone(flags = 0): a copy-on-write copy of the address space; exit signal 0.
            r = injector.Call(tid, SYS_clone, [0, 0, 0, 0, 0], ev =>
            {
                if (ev is not (PtraceEvent.Clone or PtraceEvent.Fork)) return;
                twin = (int)_session.GetEventMessage(tid);
                _session.Adopt(twin);
                reported(twin);
            });
        }
        catch (LinuxTraceException) when (twin == 0)
        {
            // Killed between creating the twin and reporting it (a fatal signal skips the event stop):
            // the twin exists, auto-attached to us and stopped, but its pid never reached us.
            foreach (int orphan in FindUnreportedTwins(exe, since))
            {
                _log.LogDebug("Killing the unreported twin {Twin} of process {Pid}.", orphan, _pid);
                _session.Adopt(orphan);
                _session.KillAndReap(orphan, StopTimeout);
            }
            throw;
        }
        if (r < 0) throw Errno.ToException((int)-r, "clone (injected)", _pid);
        if (twin == 0)
        {
            reported(twin = (int)r);
            _session.Adopt(twin);
        }
        // The twin was auto-attached (PTRACE_O_TRACECLONE) and stops before running any code.
        if (_session.WaitFor(twin, StopTimeout) is null && ProcessLiveness.ThreadState(twin, twin) != 't')
            throw new TargetBusyException($"The twin {twin} did not stop.");
        return twin;
    }

    /// <summary>
    /// Processes this thread traces that no caller knows of, running the process's executable and started
    /// since the injection began: a twin whose clone event was never reported. Its parent is the process,
    /// or the reaper once the process is gone.
    /// </summary>
    private List<int> FindUnreportedTwins(string? exe, ulong sinceTicks)
    {
        var found = new List<int>();
        if (exe is null) return found;
        // TracerPid names the tracing thread, not its process: this session's thread did all the ptrace calls.
        foreach (int q in ProcFs.ListProcesses())
        {
            if (q == _pid) continue;
            try
            {
                if (ProcFs.ReadStatus(q).TracerPid == _session.ThreadId && ProcFs.ReadExeLink(q) == exe && (StartTime(q) ?? 0) >= sinceTicks)
                    found.Add(q);
            }
            catch (LinuxTraceException) { }
        }
        return found;
    }

    /// <summary>Field 22 of /proc/PID/stat: the start time in clock ticks since boot; null when gone.</summary>
    private static ulong? StartTime(int pid)
    {
        try { return ulong.Parse(ProcFs.ReadStatFields(pid)[19]); }
        catch (LinuxTraceException) { return null; }
    }

    /// <summary>Now, in the clock ticks of /proc/PID/stat's start time: /proc/uptime (the same boot-time clock) × USER_HZ (100).</summary>
    private static ulong BootTicksNow()
    {
        string uptime = File.ReadAllText("/proc/uptime");
        return (ulong)(double.Parse(uptime[..uptime.IndexOf(' ')], System.Globalization.CultureInfo.InvariantCulture) * 100);
    }

    /// <summary>Kills the twin and makes the process reap it (an injected wait4); returns how long the process was paused for that.</summary>
    public TimeSpan KillAndReap(int twin)
    {
        // We are its tracer: collect the exit first, then it is the process's zombie.
        _session.KillAndReap(twin, StopTimeout);
        // A process that is gone or dying (every thread exited) has nobody to reap the twin but its reaper.
        if (ProcessLiveness.IsDead(_pid)) return TimeSpan.Zero;
        using var pin = CpuPin.ToCpuOf(_pid, _log);
        var sw = Stopwatch.StartNew();
        StoppedProcess? leader = null;
        try
        {
            // Only the thread that will call wait4 stops; the others run on.
            leader = StoppedProcess.StopThread(_session, _pid, _pid, _log, CancellationToken.None);
            long r = new SyscallInjector(_session, _pid).Call(_pid, SYS_wait4, [(ulong)twin, 0, LibC.__WALL, 0, 0]);
            if (r != twin) _log.LogWarning("Reaping the twin {Twin} in process {Pid} returned {Result}.", twin, _pid, r);
            else _log.LogDebug("The twin {Twin} was reaped by process {Pid}.", twin, _pid);
        }
        catch (LinuxTraceException ex)
        {
            _log.LogWarning("Could not reap the twin {Twin} in process {Pid}: {Message}", twin, _pid, ex.Message);
        }
        finally
        {
            leader?.Resume();
        }
        return sw.Elapsed;
    }
}
