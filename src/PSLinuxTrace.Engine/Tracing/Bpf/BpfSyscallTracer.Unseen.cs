using PSLinuxTrace.Engine.Procfs;

namespace PSLinuxTrace.Engine.Tracing.Bpf;

public sealed partial class BpfSyscallTracer
{
    // The process of each attached thread, for telling a process that exited before it was traced.
    private readonly Dictionary<int, int> _attachedTgid = new();

    /// <summary>
    /// Drops the attached threads that exited before they were in the traced set: the kernel's exit hook ran
    /// before AddTask, so it never removed their key, and no exit record will come. A thread is past that hook
    /// once it is gone from /proc or a zombie (sched_process_exit fires in do_exit before exit_notify,
    /// kernel/exit.c); its key still in the map then means the hook did not see it. When every thread of an
    /// attached process went that way, the process exited while it was being attached: ProcessNotFound, as the
    /// ptrace engine says, rather than a trace that waits for an exit that never comes.
    /// </summary>
    private void DropExitedBeforeTraced()
    {
        var dropped = new HashSet<int>();
        foreach (var (tid, tgid) in _attachedTgid)
        {
            if (!_live.Contains(tid) || !ProcessLiveness.HasExited(tgid, tid) || !_traced!.Delete(Key((uint)tid))) continue;
            _live.Remove(tid);
            dropped.Add(tgid);
        }
        foreach (int tgid in dropped)
            if (!_attachedTgid.Any(a => a.Value == tgid && _live.Contains(a.Key)))
                throw new ProcessNotFoundException(tgid, $"Process {tgid} exited while it was being attached.");
    }
}
