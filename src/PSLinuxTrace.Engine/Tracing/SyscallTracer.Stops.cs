using System.Diagnostics;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;
using PSLinuxTrace.Engine.Syscalls;

namespace PSLinuxTrace.Engine.Tracing;

// What each stop of a tracee means, and the event it becomes.
public sealed partial class SyscallTracer
{
    private void Handle(int tid, WaitStatus status)
    {
        if (!_tracees.TryGetValue(tid, out var t))
        {
            // A new child can report its first stop before its parent's fork event.
            _session.Adopt(tid);
            t = AddTracee(tid, ReadTgid(tid) ?? tid);
        }
        if (status.Ended)
        {
            OnExit(t, status);
            return;
        }
        if (!status.Stopped) return;
        if (status.IsSyscallStop) { OnSyscallStop(t); return; }
        if (status.Event == PtraceEvent.Stop)
        {
            if (status.IsGroupStop)
            {
                // Group-stop: PTRACE_LISTEN keeps it stopped but lets SIGCONT and events through.
                t.GroupStopped = true;
                try { _session.Listen(tid); return; }
                catch (LinuxTraceException) { }
            }
            t.GroupStopped = false;
            Resume(t);
            return;
        }
        if (status.Event != PtraceEvent.None) { OnEvent(t, status.Event); return; }
        OnSignal(t, status.StopSignal);
    }

    private void Resume(Tracee t, int signal = 0) =>
        // In seccomp mode a tracee runs freely (PTRACE_CONT) except between a seccomp stop and its syscall exit.
        _session.Resume(t.Tid, toSyscall: !(_seccompActive && !t.InSyscall && !t.SuppressUntilExec), signal);

    private void OnSyscallStop(Tracee t)
    {
        SyscallInfo info;
        try { info = _session.GetSyscallInfo(t.Tid); }
        catch (ProcessNotFoundException) { return; }
        if (info.IsEntry && t.SuppressUntilExec && _seccompWanted && !_seccompActive && (long)info.Number == _arch.Number("execve"))
        {
            // The launcher is at the entry of the program's execve: make it install the filter first;
            // the execve is then made again and reported from its fresh entry.
            InstallSeccomp(t);
            return;
        }
        if (info.IsEntry) OnEntry(t, info);
        else if (info.IsExit) OnSyscallExit(t, info.ReturnValue, info.IsError);
        Resume(t);
    }

    private void OnEntry(Tracee t, in SyscallInfo info)
    {
        t.InSyscall = true;
        t.Number = (int)info.Number;
        t.Args = info.Args;
        t.StartTicks = Stopwatch.GetTimestamp();
        t.StartTime = DateTime.UtcNow;
        string name = _arch.Name(t.Number);
        if (t.SuppressUntilExec && name is "execve" or "execveat") t.SuppressUntilExec = false;
        t.Selected = !t.SuppressUntilExec && _filter.Matches(t.Number);
        if (t.Selected && _options.DecodeArguments) _decoder.SetProcess(t.Tgid);
        t.Entry = t.Selected && _options.DecodeArguments ? _decoder.DecodeEntry(t.Tid, name, t.Args) : null;
        // The stack that made the call, while the thread waits at its entry (it is the same at the exit).
        t.Stack = t.Selected && _stacks is not null ? _stacks.Capture(_session, t.Tgid, t.Tid) : null;
    }

    private void OnSyscallExit(Tracee t, long ret, bool failed)
    {
        if (!t.InSyscall) return; // attached in the middle of a call
        t.InSyscall = false;
        string name = _arch.Name(t.Number);
        if (_options.DecodeArguments) _decoder.OnCompleted(t.Tgid, name, t.Args, ret);
        if (!t.Selected) return;
        if (_options.FailedOnly && !failed) return;
        _decoder.SetProcess(t.Tgid);
        string[] args;
        string result;
        if (_options.DecodeArguments)
        {
            args = t.Entry is null ? [] : _decoder.DecodeExit(t.Tid, name, t.Args, t.Entry, ret, failed);
            result = _decoder.FormatResult(t.Tid, name, ret, failed);
        }
        else
        {
            args = [];
            result = failed ? $"-1 {Errno.Name((int)-ret)}" : ret.ToString();
        }
        Emit(new SyscallEvent
        {
            Timestamp = t.StartTime, Pid = t.Tgid, Tid = t.Tid, ProcessName = t.Comm, Name = name, Number = t.Number,
            Arguments = args, RawArguments = t.Args, ReturnValue = ret, Result = result,
            Errno = failed ? Errno.Name((int)-ret) : null,
            Duration = Stopwatch.GetElapsedTime(t.StartTicks),
            StackTrace = t.Stack,
        });
    }

    /// <summary>A call that has not returned: exit/exit_group (never returns, "= ?") or one cut off by the end of tracing.</summary>
    private void EmitUnfinished(Tracee t)
    {
        if (!t.InSyscall || !t.Selected) return;
        t.InSyscall = false;
        if (_options.FailedOnly) return;
        string name = _arch.Name(t.Number);
        string?[] entry = t.Entry ?? [];
        Emit(new SyscallEvent
        {
            Timestamp = t.StartTime, Pid = t.Tgid, Tid = t.Tid, ProcessName = t.Comm, Name = name, Number = t.Number,
            Arguments = entry.Select(a => a ?? "?").ToArray(), RawArguments = t.Args, ReturnValue = null, Result = "?",
            Duration = Stopwatch.GetElapsedTime(t.StartTicks),
            Unfinished = !SyscallSignatures.NeverReturns(name),
            StackTrace = t.Stack,
        });
    }

    private void OnExit(Tracee t, WaitStatus status)
    {
        EmitUnfinished(t);
        _tracees.Remove(t.Tid);
        if (t.Tid == t.Tgid)
        {
            _decoder.Forget(t.Tgid);
            _comms.Remove(t.Tgid);
            _stacks?.Forget(t.Tgid);
        }
        Emit(new ProcessExitEvent
        {
            Timestamp = DateTime.UtcNow, Pid = t.Tgid, Tid = t.Tid, ProcessName = t.Comm,
            ExitCode = status.Signaled ? null : status.ExitCode,
            Signal = status.Signaled ? Signals.Name(status.TermSignal) : null,
            CoreDumped = status.Signaled && status.CoreDumped,
            IsThread = t.Tid != t.Tgid,
        });
    }

    private void OnEvent(Tracee t, PtraceEvent ev)
    {
        switch (ev)
        {
            case PtraceEvent.Fork or PtraceEvent.VFork or PtraceEvent.Clone:
                OnNewTask(t, ev);
                break;
            case PtraceEvent.Exec:
                t = OnExec(t);
                break;
            case PtraceEvent.Seccomp:
            {
                SyscallInfo info;
                try { info = _session.GetSyscallInfo(t.Tid); }
                catch (ProcessNotFoundException) { return; }
                if (info.IsSeccomp)
                {
                    OnEntry(t, info);
                    if (!t.Selected) t.InSyscall = false; // the filter is a superset only while suppressed
                }
                break;
            }
        }
        Resume(t);
    }

    private void OnNewTask(Tracee t, PtraceEvent ev)
    {
        int child = (int)_session.GetEventMessage(t.Tid);
        _session.Adopt(child);
        // A thread shares its creator's process; only a fork or a clone without CLONE_THREAD makes a new one.
        int tgid = ReadTgid(child) ?? child;
        if (!_tracees.TryGetValue(child, out var c)) c = AddTracee(child, tgid);
        c.Tgid = tgid;
        c.SuppressUntilExec = t.SuppressUntilExec;
        var kind = ev switch
        {
            PtraceEvent.Fork => ProcessStartKind.Fork,
            PtraceEvent.VFork => ProcessStartKind.VFork,
            _ => tgid == t.Tgid ? ProcessStartKind.Thread : ProcessStartKind.Clone,
        };
        Emit(new ProcessStartEvent { Timestamp = DateTime.UtcNow, Pid = tgid, Tid = child, ProcessName = c.Comm, Kind = kind, ParentTid = t.Tid });
    }

    private Tracee OnExec(Tracee t)
    {
        // execve from a non-leader thread: the kernel gives the leader's tid to the execing thread
        // (the event is reported on the tgid, the former tid in the event message).
        int former = (int)_session.GetEventMessage(t.Tid);
        if (former != t.Tid && _tracees.Remove(former, out var execer))
        {
            execer.Tid = t.Tid;
            _tracees[t.Tid] = execer;
            t = execer;
        }
        t.Tgid = t.Tid;
        _comms.Remove(t.Tgid);
        t.Comm = Comm(t.Tid);
        _decoder.Forget(t.Tgid);
        _stacks?.Forget(t.Tgid);
        t.SuppressUntilExec = false;
        Emit(new ProcessStartEvent
        {
            Timestamp = DateTime.UtcNow, Pid = t.Tgid, Tid = t.Tid, ProcessName = t.Comm, Kind = ProcessStartKind.Exec,
            ParentTid = former, ExecutablePath = ProcFs.ReadExeLink(t.Tid),
        });
        return t;
    }

    private void OnSignal(Tracee t, int sig)
    {
        if (!t.SuppressUntilExec)
        {
            var si = _session.GetSignalInfo(t.Tid);
            int code = si is null ? 0 : BitConverter.ToInt32(si, 8);
            int senderPid = 0, senderUid = 0;
            if (si is not null && (code <= 0 || sig == LibC.SIGCHLD))
            {
                senderPid = BitConverter.ToInt32(si, 16); // si_pid: _sifields at offset 16
                senderUid = BitConverter.ToInt32(si, 20);
            }
            Emit(new SignalEvent
            {
                Timestamp = DateTime.UtcNow, Pid = t.Tgid, Tid = t.Tid, ProcessName = t.Comm, Signal = Signals.Name(sig), SignalNumber = sig,
                Code = SignalCodeName(sig, code), SenderPid = senderPid, SenderUid = senderUid, Delivered = true,
            });
        }
        Resume(t, sig); // passed on unchanged
    }

    /// <summary>At the launcher's execve entry: install the seccomp-bpf filter, then let the execve be made again.</summary>
    private void InstallSeccomp(Tracee t)
    {
        long r = SeccompInstaller.Install(_session, t.Tid, _filter, _arch);
        t.InSyscall = false;
        if (r != 0)
        {
            _log.LogWarning("Installing the seccomp-bpf filter failed ({Errno}); tracing every system call instead.", Errno.Name((int)-r));
            _seccompWanted = false;
        }
        else
        {
            _seccompActive = true;
            _log.LogDebug("seccomp-bpf filter installed in {Pid}.", t.Tid);
        }
        // Suppression stays on until the redone execve: the next stop is its syscall-entry stop.
        _session.ContinueToSyscall(t.Tid);
    }

    private static string SignalCodeName(int sig, int code) => code switch
    {
        0 => "SI_USER", 0x80 => "SI_KERNEL", -1 => "SI_QUEUE", -2 => "SI_TIMER", -3 => "SI_MESGQ", -4 => "SI_ASYNCIO", -5 => "SI_SIGIO", -6 => "SI_TKILL",
        _ when sig == LibC.SIGCHLD => code switch { 1 => "CLD_EXITED", 2 => "CLD_KILLED", 3 => "CLD_DUMPED", 4 => "CLD_TRAPPED", 5 => "CLD_STOPPED", 6 => "CLD_CONTINUED", _ => code.ToString() },
        _ when sig == LibC.SIGSEGV => code switch { 1 => "SEGV_MAPERR", 2 => "SEGV_ACCERR", _ => code.ToString() },
        _ => code.ToString(),
    };
}
