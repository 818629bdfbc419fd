using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;
using PSLinuxTrace.Engine.Syscalls;
using PtraceCalls = PSLinuxTrace.Engine.Interop.Ptrace;

namespace PSLinuxTrace.Engine.Tracing;

/// <summary>
/// strace as typed events. One dedicated thread seizes the tracees (ptrace ties a tracee to the thread
/// that attached it), runs the waitpid loop and writes events to a bounded channel that the consumer
/// drains on its own thread. Cancellation or the timeout ends the trace: attached processes are
/// detached (each left exactly as it was: running, or stopped if it was group-stopped, pending signals
/// passed on), launched ones are killed with their whole tree, as strace does. The channel completes
/// only after that: every tracee detached, or killed and reaped (the cmdlets' Dispose relies on it).
/// </summary>
public sealed class SyscallTracer
{
    private readonly SyscallTraceOptions _options;
    private readonly ILogger _log;
    private readonly CancellationToken _consumerGone;
    private readonly SyscallDecoder _decoder;
    private readonly SyscallFilter _filter;
    private readonly ISyscallArchitecture _arch;
    private readonly Channel<TraceEvent> _channel;
    private readonly Dictionary<int, Tracee> _tracees = new();
    private CancellationTokenSource? _stop;
    private int _sentinel;
    private bool _launched;
    private bool _seccompWanted;
    private bool _seccompActive;
    private int _ptraceOptions;

    private sealed class Tracee
    {
        public int Tid, Tgid;
        public string Comm = "";
        public bool InSyscall, Selected, SuppressUntilExec;
        public int Number;
        public ulong[] Args = [];
        public string?[]? Entry;
        public long StartTicks;
        public DateTime StartTime;
        public bool GroupStopped;
    }

    private SyscallTracer(SyscallTraceOptions options, ILogger? log, CancellationToken cancel)
    {
        _options = options;
        _log = log ?? NullLogger.Instance;
        _consumerGone = cancel;
        _arch = options.Architecture;
        _filter = options.Filter ?? SyscallFilter.All(_arch);
        // Without a filter every call is seen, so fd paths can be cached and kept true call by call.
        _decoder = new SyscallDecoder { StringLimit = options.StringLimit, CacheFdPaths = _filter.IsAll };
        _channel = Channel.CreateBounded<TraceEvent>(new BoundedChannelOptions(Math.Max(16, options.ChannelCapacity))
        { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
    }

    /// <summary>Launches <paramref name="program"/> traced from before its execve; events until the traced tree has exited.</summary>
    public static ChannelReader<TraceEvent> Launch(string program, IReadOnlyList<string> arguments, SyscallTraceOptions options,
        ILogger? log = null, CancellationToken cancel = default, string? stdinPath = null, string? stdoutPath = null, string? stderrPath = null)
    {
        string path = TraceeLauncher.ResolveProgram(program, options.WorkingDirectory);
        var tracer = new SyscallTracer(options, log, cancel);
        tracer.Start(() => tracer.StartLaunched(path, arguments, stdinPath, stdoutPath, stderrPath), path);
        return tracer._channel.Reader;
    }

    /// <summary>Attaches to every thread of <paramref name="pid"/> with PTRACE_SEIZE; events until it exits or the trace is stopped.</summary>
    public static ChannelReader<TraceEvent> Attach(int pid, SyscallTraceOptions options, ILogger? log = null, CancellationToken cancel = default)
    {
        if (pid <= 0 || !ProcFs.Exists(pid)) throw new ProcessNotFoundException(pid);
        // A zombie has exited and only waits for its parent to reap it: ptrace refuses it with EPERM,
        // which would read as a permission problem.
        if (ReadState(pid) == 'Z') throw new ProcessNotFoundException(pid, $"Process {pid} has exited (it is a zombie waiting for its parent); there is nothing to trace.");
        var tracer = new SyscallTracer(options, log, cancel);
        tracer.Start(() => tracer.StartAttached(pid), $"pid {pid}");
        return tracer._channel.Reader;
    }

    /// <summary>Blocking enumeration of a trace (for scripts, tests and benchmarks); rethrows the tracer's error.</summary>
    public static IEnumerable<TraceEvent> ReadAll(ChannelReader<TraceEvent> reader)
    {
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            while (reader.TryRead(out var e)) yield return e;
        reader.Completion.GetAwaiter().GetResult();
    }

    private void Start(Action begin, string what)
    {
        var thread = new Thread(() => Run(begin, what)) { IsBackground = true, Name = "PSLinuxTrace syscall tracer" };
        thread.Start();
    }

    private void Run(Action begin, string what)
    {
        Exception? failure = null;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(_consumerGone);
        try
        {
            _sentinel = StartSentinel();
            using var wake = _stop.Token.Register(() => { if (_sentinel > 0) LibC.kill(_sentinel, LibC.SIGKILL); });
            if (_options.Timeout is { } t && t > TimeSpan.Zero) _stop.CancelAfter(t);
            begin();
            Loop();
        }
        catch (Exception ex)
        {
            failure = ex;
            _log.LogDebug("Tracing {What} failed: {Message}", what, ex.Message);
        }
        finally
        {
            try { Finish(); }
            catch (Exception ex) { failure ??= ex; }
            StopSentinel();
            _stop.Dispose();
            _channel.Writer.TryComplete(failure);
        }
    }

    // ---- starting ----------------------------------------------------------------------------------

    private int PtraceOptions()
    {
        int o = LibC.PTRACE_O_TRACESYSGOOD | LibC.PTRACE_O_TRACEEXEC;
        if (_options.FollowForks) o |= LibC.PTRACE_O_TRACEFORK | LibC.PTRACE_O_TRACEVFORK | LibC.PTRACE_O_TRACECLONE;
        if (_launched) o |= LibC.PTRACE_O_EXITKILL;
        if (_seccompWanted) o |= LibC.PTRACE_O_TRACESECCOMP;
        return o;
    }

    private void StartLaunched(string path, IReadOnlyList<string> arguments, string? stdin, string? stdout, string? stderr)
    {
        _launched = true;
        _seccompWanted = _options.UseSeccomp && !_filter.IsAll && SeccompFilterProgram.CanBuild(_filter);
        int pid = TraceeLauncher.SpawnStopped(path, arguments, stdin, stdout, stderr, _options.WorkingDirectory);
        _ptraceOptions = PtraceOptions();
        try { PtraceCalls.Seize(pid, _ptraceOptions); }
        catch { LibC.kill(pid, LibC.SIGKILL); LibC.waitpid(pid, out _, LibC.__WALL | LibC.__WNOTHREAD); throw; }
        _log.LogInformation("Launched {Path} as process {Pid}{Seccomp}.", path, pid, _seccompWanted ? " (seccomp-bpf filter)" : "");
        var t = AddTracee(pid, pid);
        t.SuppressUntilExec = true; // the launcher shell's own calls before the execve are not the program's
        PinTo(pid);
        LibC.kill(pid, LibC.SIGCONT);
        Emit(new ProcessStartEvent { Timestamp = DateTime.UtcNow, Pid = pid, Tid = pid, ProcessName = t.Comm, Kind = ProcessStartKind.Launch, ExecutablePath = path });
    }

    private void StartAttached(int pid)
    {
        int tgid = ReadTgid(pid) ?? throw new ProcessNotFoundException(pid);
        _ptraceOptions = PtraceOptions();
        var seen = new HashSet<int>();
        // Threads can appear while we seize: list until a pass finds nothing new (new ones after a
        // seize are auto-attached through PTRACE_O_TRACECLONE).
        for (bool more = true; more;)
        {
            more = false;
            List<int> threads;
            try { threads = ProcFs.ListThreads(tgid); }
            catch (LinuxTraceException) when (seen.Count > 0) { break; }
            foreach (int tid in threads)
            {
                if (!seen.Add(tid)) continue;
                more = true;
                try { PtraceCalls.Seize(tid, _ptraceOptions); }
                catch (ProcessNotFoundException) when (tid != tgid || seen.Count > 1) { continue; } // thread exited meanwhile
                var t = AddTracee(tid, tgid);
                PtraceCalls.Interrupt(tid); // a seized tracee runs on: stop it once to start syscall tracing
                Emit(new ProcessStartEvent { Timestamp = DateTime.UtcNow, Pid = tgid, Tid = tid, ProcessName = t.Comm, Kind = ProcessStartKind.Attach });
            }
            if (!_options.FollowForks) break;
        }
        _log.LogInformation("Attached to process {Pid} ({Count} threads).", tgid, _tracees.Count);
        PinTo(tgid);
    }

    private Tracee AddTracee(int tid, int tgid)
    {
        var t = new Tracee { Tid = tid, Tgid = tgid, Comm = ReadComm(tgid) };
        _tracees[tid] = t;
        return t;
    }

    private void PinTo(int pid)
    {
        if (!_options.PinToTraceeCpu) return;
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            int cpu = int.Parse(fields[36]); // field 39 "processor", counted from field 3 (state)
            if (!ThreadAffinity.PinTo(cpu)) _log.LogDebug("Could not pin the tracer to CPU {Cpu}.", cpu);
            else _log.LogDebug("Tracer pinned to CPU {Cpu}, the tracee's.", cpu);
        }
        catch (Exception ex) when (ex is IOException or FormatException or IndexOutOfRangeException) { }
    }

    // A child of the tracer thread that we kill to wake a blocking waitpid on cancellation or timeout:
    // waitpid(-1, __WALL|__WNOTHREAD) then returns at once, with no polling while the tracees are idle.
    // It ignores the terminal's SIGINT/SIGQUIT/SIGTSTP (SIG_IGN survives exec), so Ctrl+C reaches us as a
    // cancellation, not as the sentinel's death.
    private static int StartSentinel() =>
        LibC.Spawn("/bin/sh", ["sh", "-c", "trap '' INT QUIT TSTP HUP; exec sleep 2147483647"], ["PATH=/usr/bin:/bin"], "/dev/null", "/dev/null", "/dev/null");

    private void StopSentinel()
    {
        if (_sentinel <= 0) return;
        int s = _sentinel;
        _sentinel = 0;
        LibC.kill(s, LibC.SIGKILL);
        PtraceCalls.WaitAny(s, LibC.__WALL | LibC.__WNOTHREAD);
    }

    // ---- the loop ----------------------------------------------------------------------------------

    private void Loop()
    {
        while (_tracees.Count > 0 && !_stop!.IsCancellationRequested)
        {
            var (pid, status) = PtraceCalls.WaitAny(-1, LibC.__WALL | LibC.__WNOTHREAD);
            if (pid == -Errno.ECHILD) { _tracees.Clear(); break; }
            if (pid < 0) throw Errno.ToException(-pid, "waitpid");
            if (pid == _sentinel)
            {
                _sentinel = 0; // reaped
                if (_stop.IsCancellationRequested) break;
                _log.LogDebug("The tracer's wake-up process was killed from outside; starting another.");
                _sentinel = StartSentinel();
                continue;
            }
            Handle(pid, status);
        }
    }

    private void Handle(int tid, int status)
    {
        if (!_tracees.TryGetValue(tid, out var t))
        {
            // A new child can report its first stop before its parent's fork event.
            int tgid = ReadTgid(tid) ?? tid;
            t = AddTracee(tid, tgid);
        }
        if (LibC.WIFEXITED(status) || LibC.WIFSIGNALED(status))
        {
            OnExit(t, status);
            return;
        }
        if (!LibC.WIFSTOPPED(status)) return;
        int sig = LibC.WSTOPSIG(status);
        int ev = LibC.PtraceEvent(status);
        if (sig == (LibC.SIGTRAP | 0x80)) { OnSyscallStop(t); return; }
        if (ev == LibC.PTRACE_EVENT_STOP)
        {
            if (sig is LibC.SIGSTOP or LibC.SIGTSTP or LibC.SIGTTIN or LibC.SIGTTOU)
            {
                // Group-stop: PTRACE_LISTEN keeps it stopped but lets SIGCONT and events through.
                t.GroupStopped = true;
                try { PtraceCalls.Listen(tid); return; }
                catch (LinuxTraceException) { }
            }
            t.GroupStopped = false;
            Resume(t);
            return;
        }
        if (sig == LibC.SIGTRAP && ev != 0) { OnEvent(t, ev); return; }
        OnSignal(t, sig);
    }

    private void Resume(Tracee t, int signal = 0)
    {
        // In seccomp mode a tracee runs freely (PTRACE_CONT) except between a seccomp stop and its syscall exit.
        long r = _seccompActive && !t.InSyscall && !t.SuppressUntilExec
            ? LibC.ptrace(LibC.PTRACE_CONT, t.Tid, 0, signal)
            : LibC.ptrace(LibC.PTRACE_SYSCALL, t.Tid, 0, signal);
        if (r == -1 && Errno.Last != Errno.ESRCH) throw Errno.ToException(Errno.Last, "ptrace(PTRACE_SYSCALL)", t.Tid);
        // ESRCH: killed meanwhile (SIGKILL); its exit status follows.
    }

    private void OnSyscallStop(Tracee t)
    {
        SyscallInfo info;
        try { info = PtraceSyscallInfo.Get(t.Tid); }
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
        });
    }

    private void OnExit(Tracee t, int status)
    {
        EmitUnfinished(t);
        _tracees.Remove(t.Tid);
        if (t.Tid == t.Tgid) _decoder.Forget(t.Tgid);
        bool signaled = LibC.WIFSIGNALED(status);
        Emit(new ProcessExitEvent
        {
            Timestamp = DateTime.UtcNow, Pid = t.Tgid, Tid = t.Tid, ProcessName = t.Comm,
            ExitCode = signaled ? null : LibC.WEXITSTATUS(status),
            Signal = signaled ? Signals.Name(LibC.WTERMSIG(status)) : null,
            CoreDumped = signaled && LibC.WCOREDUMP(status),
            IsThread = t.Tid != t.Tgid,
        });
    }

    private void OnEvent(Tracee t, int ev)
    {
        switch (ev)
        {
            case LibC.PTRACE_EVENT_FORK or LibC.PTRACE_EVENT_VFORK or LibC.PTRACE_EVENT_CLONE:
                {
                    int child = (int)PtraceCalls.GetEventMsg(t.Tid);
                    int tgid = ReadTgid(child) ?? child;
                    if (!_tracees.TryGetValue(child, out var c)) c = AddTracee(child, tgid);
                    c.Tgid = tgid;
                    c.SuppressUntilExec = t.SuppressUntilExec;
                    var kind = ev switch
                    {
                        LibC.PTRACE_EVENT_FORK => ProcessStartKind.Fork,
                        LibC.PTRACE_EVENT_VFORK => ProcessStartKind.VFork,
                        _ => tgid == t.Tgid ? ProcessStartKind.Thread : ProcessStartKind.Clone,
                    };
                    Emit(new ProcessStartEvent { Timestamp = DateTime.UtcNow, Pid = tgid, Tid = child, ProcessName = c.Comm, Kind = kind, ParentTid = t.Tid });
                    break;
                }
            case LibC.PTRACE_EVENT_EXEC:
                {
                    // execve from a non-leader thread: the kernel gives the leader's tid to the execing thread
                    // (the event is reported on the tgid, the former tid in the event message).
                    int former = (int)PtraceCalls.GetEventMsg(t.Tid);
                    if (former != t.Tid && _tracees.Remove(former, out var execer))
                    {
                        execer.Tid = t.Tid;
                        _tracees[t.Tid] = execer;
                        t = execer;
                    }
                    t.Tgid = t.Tid;
                    t.Comm = ReadComm(t.Tid);
                    _decoder.Forget(t.Tgid);
                    t.SuppressUntilExec = false;
                    Emit(new ProcessStartEvent
                    {
                        Timestamp = DateTime.UtcNow, Pid = t.Tgid, Tid = t.Tid, ProcessName = t.Comm, Kind = ProcessStartKind.Exec,
                        ParentTid = former, ExecutablePath = ProcFs.ReadExeLink(t.Tid),
                    });
                    break;
                }
            case LibC.PTRACE_EVENT_SECCOMP:
                {
                    SyscallInfo info;
                    try { info = PtraceSyscallInfo.Get(t.Tid); }
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

    private void OnSignal(Tracee t, int sig)
    {
        if (!t.SuppressUntilExec)
        {
            var si = PtraceCalls.GetSigInfo(t.Tid);
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

    private static string SignalCodeName(int sig, int code) => code switch
    {
        0 => "SI_USER", 0x80 => "SI_KERNEL", -1 => "SI_QUEUE", -2 => "SI_TIMER", -3 => "SI_MESGQ", -4 => "SI_ASYNCIO", -5 => "SI_SIGIO", -6 => "SI_TKILL",
        _ when sig == LibC.SIGCHLD => code switch { 1 => "CLD_EXITED", 2 => "CLD_KILLED", 3 => "CLD_DUMPED", 4 => "CLD_TRAPPED", 5 => "CLD_STOPPED", 6 => "CLD_CONTINUED", _ => code.ToString() },
        _ when sig == LibC.SIGSEGV => code switch { 1 => "SEGV_MAPERR", 2 => "SEGV_ACCERR", _ => code.ToString() },
        _ => code.ToString(),
    };

    // ---- seccomp -----------------------------------------------------------------------------------

    /// <summary>
    /// At the launcher's execve entry stop: turn that call into seccomp(SECCOMP_SET_MODE_FILTER) with the
    /// program written below the stack's red zone, run it, then rewind to redo the execve under the filter.
    /// </summary>
    private void InstallSeccomp(Tracee t)
    {
        var saved = PtraceCalls.GetRegs(t.Tid);
        byte[] program = SeccompFilterProgram.Build(_filter, _arch);
        ulong filterAddress = (saved.rsp - 128 - (ulong)program.Length - 64) & ~15UL;
        ulong fprogAddress = filterAddress - 16;
        var fprog = new byte[16];
        BitConverter.TryWriteBytes(fprog.AsSpan(0, 2), (ushort)(program.Length / 8)); // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
        BitConverter.TryWriteBytes(fprog.AsSpan(8, 8), filterAddress);
        RemoteMemoryWriter.Write(t.Tid, filterAddress, program);
        RemoteMemoryWriter.Write(t.Tid, fprogAddress, fprog);
        // Without CAP_SYS_ADMIN the kernel takes a filter only under no_new_privs (seccomp(2)).
        bool needNoNewPrivs = EffectiveUid() != 0;
        if (needNoNewPrivs && Inject(t, saved, true, (ulong)_arch.Number("prctl"), LibC.PR_SET_NO_NEW_PRIVS, 1, 0) != 0)
            throw new LinuxTraceException("The tracee could not set no_new_privs, which an unprivileged seccomp filter needs.");
        long r = Inject(t, saved, !needNoNewPrivs, (ulong)_arch.Number("seccomp"), LibC.SECCOMP_SET_MODE_FILTER, 0, fprogAddress);
        // Redo the execve: back over the 2-byte syscall instruction, with the call number in rax.
        var again = saved;
        again.rip -= 2;
        again.rax = saved.orig_rax;
        PtraceCalls.SetRegs(t.Tid, again);
        t.InSyscall = false;
        if (r != 0)
        {
            _log.LogWarning("Installing the seccomp-bpf filter failed ({Errno}); tracing every system call instead.", Errno.Name((int)-r));
            _seccompWanted = false;
        }
        else
        {
            _seccompActive = true;
            _log.LogDebug("seccomp-bpf filter installed in {Pid} ({Count} instructions).", t.Tid, program.Length / 8);
        }
        // Suppression stays on until the redone execve: the next stop is its syscall-entry stop.
        PtraceCalls.Syscall(t.Tid);
    }

    /// <summary>
    /// Runs one system call in the tracee. <paramref name="atEntry"/>: the tracee sits at a syscall-entry
    /// stop (the call is replaced); otherwise at a syscall-exit stop (rewound over the syscall instruction to make a new call).
    /// Leaves the tracee at the injected call's exit stop and returns its result.
    /// </summary>
    private static long Inject(Tracee t, UserRegsX64 saved, bool atEntry, ulong number, ulong a0, ulong a1, ulong a2)
    {
        var regs = saved;
        regs.orig_rax = number;
        regs.rax = number;
        regs.rdi = a0; regs.rsi = a1; regs.rdx = a2;
        if (!atEntry) regs.rip -= 2;
        PtraceCalls.SetRegs(t.Tid, regs);
        for (int stops = atEntry ? 1 : 2; stops > 0;)
        {
            PtraceCalls.Syscall(t.Tid);
            var (pid, status) = PtraceCalls.WaitAny(t.Tid, LibC.__WALL | LibC.__WNOTHREAD);
            if (pid < 0 || !LibC.WIFSTOPPED(status)) throw new ProcessNotFoundException(t.Tid, $"The launched process {t.Tid} died while the seccomp filter was being installed.");
            if (LibC.WSTOPSIG(status) == (LibC.SIGTRAP | 0x80)) stops--;
        }
        return (long)PtraceCalls.GetRegs(t.Tid).rax;
    }

    private static uint EffectiveUid()
    {
        try { return ProcFs.ReadStatus(Environment.ProcessId).EffectiveUid; }
        catch (LinuxTraceException) { return 1; }
    }

    // ---- ending ------------------------------------------------------------------------------------

    private void Finish()
    {
        if (_tracees.Count == 0) return;
        if (_launched)
        {
            // As strace does on Ctrl+C of a program it started: kill the tree.
            foreach (var t in _tracees.Values) EmitUnfinished(t);
            foreach (int tgid in _tracees.Values.Select(x => x.Tgid).Distinct().ToList()) LibC.kill(tgid, LibC.SIGKILL);
            DrainUntilGone(detach: false);
        }
        else
        {
            foreach (var t in _tracees.Values.ToList())
            {
                EmitUnfinished(t);
                if (LibC.ptrace(LibC.PTRACE_INTERRUPT, t.Tid, 0, 0) == -1) _tracees.Remove(t.Tid);
            }
            DrainUntilGone(detach: true);
            _log.LogInformation("Detached.");
        }
    }

    private void DrainUntilGone(bool detach)
    {
        var deadline = Stopwatch.StartNew();
        while (_tracees.Count > 0)
        {
            var (pid, status) = PtraceCalls.WaitAny(-1, LibC.__WALL | LibC.__WNOTHREAD | LibC.WNOHANG);
            if (pid == -Errno.ECHILD) break;
            if (pid < 0) throw Errno.ToException(-pid, "waitpid");
            if (pid == 0)
            {
                if (deadline.Elapsed > TimeSpan.FromSeconds(30)) throw new LinuxTraceException($"Tracees {string.Join(", ", _tracees.Keys)} did not stop within 30 s.");
                Thread.Sleep(1);
                continue;
            }
            if (pid == _sentinel) { _sentinel = 0; continue; }
            if (!_tracees.TryGetValue(pid, out var t))
            {
                t = AddTracee(pid, ReadTgid(pid) ?? pid); // a child born during the stop
                if (detach) { LibC.ptrace(LibC.PTRACE_INTERRUPT, pid, 0, 0); }
            }
            if (LibC.WIFEXITED(status) || LibC.WIFSIGNALED(status)) { OnExit(t, status); continue; }
            if (!LibC.WIFSTOPPED(status)) continue;
            if (!detach) { LibC.ptrace(LibC.PTRACE_CONT, pid, 0, 0); continue; }
            int sig = LibC.WSTOPSIG(status);
            int ev = LibC.PtraceEvent(status);
            if (ev is LibC.PTRACE_EVENT_FORK or LibC.PTRACE_EVENT_VFORK or LibC.PTRACE_EVENT_CLONE)
            {
                int child = (int)PtraceCalls.GetEventMsg(pid);
                if (!_tracees.ContainsKey(child)) AddTracee(child, ReadTgid(child) ?? child);
            }
            // A signal-delivery stop hands its signal back on detach, so no signal is lost.
            int pass = ev == 0 && sig != (LibC.SIGTRAP | 0x80) ? sig : 0;
            PtraceCalls.Detach(pid, pass);
            _tracees.Remove(pid);
        }
    }

    private void Emit(TraceEvent e)
    {
        if (_channel.Writer.TryWrite(e)) return;
        if (_consumerGone.IsCancellationRequested) return; // nobody reads any more
        try { _channel.Writer.WriteAsync(e, _consumerGone).AsTask().GetAwaiter().GetResult(); }
        catch (OperationCanceledException) { }
    }

    private static int? ReadTgid(int tid)
    {
        try { return ProcFs.ReadStatus(tid).Tgid; }
        catch (LinuxTraceException) { return null; }
        catch (IOException) { return null; }
    }

    private static char ReadState(int pid)
    {
        try { return ProcFs.ReadStatus(pid).State; }
        catch (LinuxTraceException) { return '\0'; }
        catch (IOException) { return '\0'; }
    }

    private static string ReadComm(int pid)
    {
        try { return ProcFs.ReadComm(pid); }
        catch (LinuxTraceException) { return ""; }
        catch (IOException) { return ""; }
    }
}
