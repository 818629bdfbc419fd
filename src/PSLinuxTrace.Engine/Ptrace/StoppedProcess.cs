using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Procfs;

namespace PSLinuxTrace.Engine.Ptrace;

/// <summary>
/// Every thread of a process seized and stopped with PTRACE_INTERRUPT (no signal the process can see),
/// for as long as the holder needs it still: a snapshot's pause, a live stack capture. A signal that
/// arrives meanwhile is kept and handed back on <see cref="Resume"/>, which detaches the threads (the
/// leader last) and leaves the process running as before. Threads created during the stop are
/// auto-attached (PTRACE_O_TRACECLONE) and stopped too.
/// </summary>
public sealed class StoppedProcess
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);
    private readonly PtraceSession _session;
    private readonly ILogger _log;
    private readonly Dictionary<int, Thread> _threads = new();

    private sealed class Thread
    {
        public required int Tid { get; init; }
        public int PendingSignal { get; set; }
        public bool Stopped { get; set; }
        public bool Gone { get; set; }
    }

    private StoppedProcess(PtraceSession session, int pid, ILogger log)
    {
        _session = session;
        Pid = pid;
        _log = log;
    }

    public int Pid { get; }

    /// <summary>The stopped threads, the leader first when it is one of them.</summary>
    public IReadOnlyList<int> Threads =>
        _threads.Values.Where(t => !t.Gone).Select(t => t.Tid).OrderBy(t => t == Pid ? 0 : 1).ThenBy(t => t).ToList();

    /// <summary>Seizes and interrupts every thread of <paramref name="pid"/> until no new one appears; the process is then still.</summary>
    public static StoppedProcess Stop(PtraceSession session, int pid, ILogger log, CancellationToken cancel)
    {
        var stopped = new StoppedProcess(session, pid, log);
        try
        {
            stopped.SeizeAll(cancel);
            return stopped;
        }
        catch
        {
            stopped.Resume();
            throw;
        }
    }

    /// <summary>Seizes and interrupts one thread only (the others run on): enough to inject a call into it.</summary>
    public static StoppedProcess StopThread(PtraceSession session, int pid, int tid, ILogger log, CancellationToken cancel)
    {
        var stopped = new StoppedProcess(session, pid, log);
        try
        {
            session.Seize(tid, PtraceOptions.None);
            var t = new Thread { Tid = tid };
            stopped._threads[tid] = t;
            session.Interrupt(tid);
            stopped.WaitStopped(t, cancel);
            return stopped;
        }
        catch
        {
            stopped.Resume();
            throw;
        }
    }

    private void SeizeAll(CancellationToken cancel)
    {
        for (int round = 0; round < 100; round++)
        {
            bool added = false;
            foreach (int tid in ProcFs.ListThreads(Pid))
            {
                if (_threads.ContainsKey(tid)) continue;
                try
                {
                    _session.Seize(tid, PtraceOptions.Clone);
                }
                catch (ProcessNotFoundException) when (tid != Pid)
                {
                    continue; // the thread exited meanwhile
                }
                catch (TargetPermissionDeniedException ex) when (ProcessLiveness.IsExiting(Pid, tid))
                {
                    // ptrace refuses an exiting thread with EPERM, which is not a permission problem.
                    if (tid != Pid) continue;
                    throw new ProcessNotFoundException(Pid, $"Process {Pid} exited while it was being stopped.", ex);
                }
                _threads[tid] = new Thread { Tid = tid };
                added = true;
            }
            foreach (var t in _threads.Values.Where(t => !t.Stopped && !t.Gone))
                if (!_session.TryInterrupt(t.Tid)) t.Gone = true;
            foreach (var t in _threads.Values.Where(t => !t.Stopped && !t.Gone).ToList())
                WaitStopped(t, cancel);
            if (!added) return;
        }
    }

    private void WaitStopped(Thread t, CancellationToken cancel)
    {
        var status = _session.WaitFor(t.Tid, StopTimeout, cancel);
        if (status is not { } s)
        {
            char state = ProcessLiveness.ThreadState(Pid, t.Tid);
            if (state is 'Z' or 'X' or '\0')
            {
                // Killed while we waited: a dead leader reports only after its other threads, which
                // wait for us to reap them (done on resume), so this is an exit, not a busy thread.
                Gone(t);
                return;
            }
            cancel.ThrowIfCancellationRequested();
            throw new TargetBusyException($"Thread {t.Tid} of process {Pid} did not stop within {StopTimeout.TotalSeconds} s.");
        }
        if (s.Ended) { Gone(t); return; }
        t.Stopped = true;
        if (s.Event == PtraceEvent.Clone)
        {
            // A new thread: auto-attached; it reports its own stop, and the next round waits for it.
            int child = (int)_session.GetEventMessage(t.Tid);
            _session.Adopt(child);
            _threads.TryAdd(child, new Thread { Tid = child });
        }
        else if (s.IsSignalDelivery)
        {
            // A signal arrived before our interrupt: handed back on resume, so nothing is lost.
            t.PendingSignal = s.StopSignal;
        }
    }

    private void Gone(Thread t)
    {
        t.Gone = true;
        if (t.Tid == Pid) throw new ProcessNotFoundException(Pid, $"Process {Pid} exited while it was being stopped.");
    }

    /// <summary>Whether the thread is one of the stopped ones.</summary>
    public bool Holds(int tid) => _threads.TryGetValue(tid, out var t) && !t.Gone;

    /// <summary>
    /// Detaches every thread (the leader last: a killed leader reports its exit only once its other,
    /// traced threads are reaped), each with the signal that arrived during the stop. Safe to call twice.
    /// </summary>
    public void Resume()
    {
        foreach (var t in _threads.Values.OrderBy(t => t.Tid == Pid ? 1 : 0).ToList())
        {
            if (t.Gone) continue;
            try
            {
                if (!_session.Detach(t.Tid, t.PendingSignal)) Settle(t);
            }
            catch (LinuxTraceException ex)
            {
                _log.LogWarning("Detaching thread {Tid} failed: {Message}", t.Tid, ex.Message);
            }
            t.Gone = true;
        }
    }

    /// <summary>
    /// A thread PTRACE_DETACH refused with ESRCH: either not in a stop (seized, not yet interrupted,
    /// when an error cut the stop short): stop it and detach; or dead: collect its exit, so no traced
    /// zombie thread keeps its process from being reaped while we live.
    /// </summary>
    private void Settle(Thread t)
    {
        _session.TryInterrupt(t.Tid);
        try
        {
            if (_session.WaitFor(t.Tid, TimeSpan.FromSeconds(2)) is { Stopped: true }) _session.Detach(t.Tid, t.PendingSignal);
        }
        catch (ProcessNotFoundException) { }
    }
}
