using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Procfs;

namespace PSLinuxTrace.Engine.Ptrace;

/// <summary>
/// Runs system calls inside a stopped thread of a traced process: the tool a live snapshot needs
/// (clone a twin, create a userfaultfd, reap the twin) and a launch under seccomp (install the filter).
/// The thread's registers are restored afterwards; signals that arrive meanwhile stay pending for it.
/// An injected call passes the thread's seccomp filter like its own calls: callers check first.
/// </summary>
public sealed class SyscallInjector
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(5);
    private readonly PtraceSession _session;
    private readonly ISyscallAbi _abi;
    private readonly int _pid;
    private ulong _syscallAt;

    public SyscallInjector(PtraceSession session, int pid, ISyscallAbi? abi = null)
    {
        _session = session;
        _pid = pid;
        _abi = abi ?? SyscallAbiX64.Instance;
    }

    /// <summary>
    /// Runs <paramref name="number"/>(<paramref name="args"/>) in <paramref name="tid"/> (stopped in any
    /// ptrace-stop) by single-stepping a syscall instruction of the process's vDSO or C library, and
    /// returns its result. <paramref name="onEvent"/> sees each ptrace event the call causes (the clone of a twin).
    /// </summary>
    public long Call(int tid, long number, ReadOnlySpan<ulong> args, Action<PtraceEvent>? onEvent = null)
    {
        ulong at = _syscallAt != 0 ? _syscallAt : _syscallAt = FindSyscallInstruction();
        var saved = _session.GetRegisters(tid);
        _session.SetRegisters(tid, _abi.CallAt(saved, at, number, args));
        try
        {
            _session.SingleStep(tid);
            for (int guard = 0; guard < 16; guard++)
            {
                var status = WaitStep(tid);
                if (status.Ended) throw new ProcessNotFoundException(_pid, $"Process {_pid} exited while a system call was injected into it.");
                if (status.Event != PtraceEvent.None)
                {
                    onEvent?.Invoke(status.Event);
                    _session.SingleStep(tid);
                    continue;
                }
                if (status.StopSignal == Interop.LibC.SIGTRAP)
                {
                    var after = _session.GetRegisters(tid);
                    if (_abi.InstructionPointer(after) == at + (ulong)_abi.SyscallInstruction.Length) return _abi.Result(after);
                }
                // Any other signal: it stays pending for the thread (re-delivered after detach); step on.
                _session.SingleStep(tid);
            }
            throw new TargetBusyException($"Thread {tid} did not return from the injected system call.");
        }
        finally
        {
            // A thread killed meanwhile has no registers left to restore (and must not mask why it failed).
            try { _session.SetRegisters(tid, saved); }
            catch (ProcessNotFoundException) { }
        }
    }

    /// <summary>
    /// Makes a thread stopped at a syscall stop run <paramref name="number"/>(<paramref name="args"/>) there
    /// instead (entry: the pending call is replaced; exit: a new call after it), leaving it at that call's
    /// exit stop, and returns the result. The caller restores or rewrites the registers afterwards.
    /// </summary>
    public long CallAtSyscallStop(int tid, UserRegsX64 saved, bool atEntry, long number, ReadOnlySpan<ulong> args)
    {
        _session.SetRegisters(tid, _abi.ReplaceAtStop(saved, atEntry, number, args));
        for (int stops = atEntry ? 1 : 2; stops > 0;)
        {
            _session.ContinueToSyscall(tid);
            var status = _session.WaitFor(tid, StepTimeout);
            if (status is not { Stopped: true } s) throw new ProcessNotFoundException(tid, $"Thread {tid} died while a system call was injected into it.");
            if (s.IsSyscallStop) stops--;
        }
        return _abi.Result(_session.GetRegisters(tid));
    }

    /// <summary>Registers that redo the call a thread was at the entry of, after an injection replaced it.</summary>
    public UserRegsX64 Redo(UserRegsX64 atEntry) => _abi.Redo(atEntry);

    /// <summary>
    /// Waits for the stepping thread in short slices: a killed thread of a multi-threaded process reports
    /// nothing while its siblings wait for us to reap them, so a dead thread is seen in /proc and reported
    /// as the process's exit, not waited on until a timeout.
    /// </summary>
    private WaitStatus WaitStep(int tid)
    {
        var deadline = DateTime.UtcNow + StepTimeout;
        while (true)
        {
            if (_session.WaitFor(tid, TimeSpan.FromMilliseconds(20)) is { } status) return status;
            if (ProcessLiveness.HasExited(_pid, tid)) throw new ProcessNotFoundException(_pid, $"Process {_pid} exited while a system call was injected into it.");
            if (DateTime.UtcNow >= deadline) throw new TargetBusyException($"Thread {tid} did not finish the injected system call.");
        }
    }

    /// <summary>A syscall instruction in the process's vDSO (first) or C library text.</summary>
    private ulong FindSyscallInstruction()
    {
        var instruction = _abi.SyscallInstruction;
        foreach (var m in ProcFs.ReadMaps(_pid).OrderBy(m => m.Kind == MappingKind.Vdso ? 0 : 1))
        {
            if (!m.IsExecutable || !m.IsReadable || (m.Kind != MappingKind.Vdso && (m.Path is null || !m.Path.Contains("libc", StringComparison.Ordinal)))) continue;
            var bytes = new byte[Math.Min(m.End - m.Start, 4UL << 20)];
            int n = RemoteMemory.Read(_pid, m.Start, bytes);
            int i = bytes.AsSpan(0, n).IndexOf(instruction);
            if (i >= 0) return m.Start + (ulong)i;
        }
        // A process killed meanwhile shows no mappings any more.
        if (ProcessLiveness.IsExiting(_pid, _pid)) throw new ProcessNotFoundException(_pid, $"Process {_pid} exited while a system call was injected into it.");
        throw new UnsupportedFeatureException("Injecting a system call", null, $"no syscall instruction found in process {_pid}'s vDSO or C library", byKernel: false);
    }
}
