using System.Diagnostics;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Ptrace;

namespace PSLinuxTrace.Engine.Tracing;

// Ending a trace: a launched tree is killed (as strace does on Ctrl+C of a program it started);
// attached processes are interrupted and detached, each with the signal it was about to get.
public sealed partial class SyscallTracer
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    private void Finish()
    {
        if (_tracees.Count == 0) return;
        if (_launched)
        {
            foreach (var t in _tracees.Values) EmitUnfinished(t);
            foreach (int tgid in _tracees.Values.Select(x => x.Tgid).Distinct().ToList()) LibC.kill(tgid, LibC.SIGKILL);
            DrainUntilGone(detach: false);
        }
        else
        {
            foreach (var t in _tracees.Values.ToList())
            {
                EmitUnfinished(t);
                if (!_session.TryInterrupt(t.Tid)) _tracees.Remove(t.Tid);
            }
            DrainUntilGone(detach: true);
            _log.LogInformation("Detached.");
        }
    }

    /// <summary>Collects every tracee's last stop: detaching it there, or (killed) letting it run to its exit.</summary>
    private void DrainUntilGone(bool detach)
    {
        var deadline = Stopwatch.StartNew();
        while (_tracees.Count > 0)
        {
            var w = _session.WaitAny(block: false);
            if (w.NoTasks) break;
            if (w.Woken) continue; // the cancellation that brought us here
            if (w.Nothing)
            {
                if (deadline.Elapsed > DrainTimeout) throw new LinuxTraceException($"Tracees {string.Join(", ", _tracees.Keys)} did not stop within {DrainTimeout.TotalSeconds} s.");
                Thread.Sleep(1);
                continue;
            }
            int pid = w.Pid;
            if (!_tracees.TryGetValue(pid, out var t))
            {
                _session.Adopt(pid);
                t = AddTracee(pid, ReadTgid(pid) ?? pid); // a child born during the stop
                if (detach) _session.TryInterrupt(pid);
            }
            var status = w.Status;
            if (status.Ended) { OnExit(t, status); continue; }
            if (!status.Stopped) continue;
            if (!detach) { _session.Resume(pid, toSyscall: false); continue; }
            if (status.Event is PtraceEvent.Fork or PtraceEvent.VFork or PtraceEvent.Clone)
            {
                int child = (int)_session.GetEventMessage(pid);
                _session.Adopt(child);
                if (!_tracees.ContainsKey(child)) AddTracee(child, ReadTgid(child) ?? child);
            }
            // A signal-delivery stop hands its signal back on detach, so no signal is lost.
            _session.Detach(pid, status.IsSignalDelivery ? status.StopSignal : 0);
            _tracees.Remove(pid);
        }
    }
}
