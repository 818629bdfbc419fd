using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Wire;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;
using PSLinuxTrace.Engine.Syscalls;

namespace PSLinuxTrace.Engine.Snapshot;

/// <summary>
/// snappy-start's snapshot mode: run a program under ptrace from its execve until its first system
/// call that a restorer could not simply replay (a write, a socket, a fork...), refusing brk so the
/// heap lives in mmaps; then write the process at that syscall-entry stop as an ELF core, with the
/// state a restore needs (fs base, tid address, the pending syscall, the open read-only files) in a
/// PSLINUXTRACE note, and end the program. Single-threaded programs only.
/// </summary>
public sealed class LaunchSnapshotter
{
    private readonly ILogger _log;
    public LaunchSnapshotter(ILogger log) => _log = log;

    private const int ENOSYS = 38;
    private const int O_ACCMODE = 3, O_CREAT = 0x40, O_TRUNC = 0x200, MAP_TYPE = 0x0f, MAP_PRIVATE = 2, CLONE_THREAD = 0x10000;

    private enum Verdict { Replay, RefuseBrk, Stop, MultiThreaded, Exit }

    private static Verdict Classify(string name, ulong[] a) => name switch
    {
        "read" or "pread64" or "readv" or "preadv" or "close" or "fstat" or "stat" or "lstat" or "newfstatat" or "statx" or "lseek"
            or "mprotect" or "munmap" or "madvise" or "access" or "faccessat" or "faccessat2" or "readlink" or "readlinkat"
            or "getpid" or "getppid" or "gettid" or "getuid" or "geteuid" or "getgid" or "getegid" or "getresuid" or "getresgid"
            or "uname" or "arch_prctl" or "set_tid_address" or "set_robust_list" or "rseq" or "getrandom" or "clock_gettime"
            or "clock_getres" or "gettimeofday" or "time" or "sysinfo" or "getcwd" or "rt_sigprocmask" or "rt_sigaction"
            or "sigaltstack" or "getdents64" or "sched_getaffinity" or "getrlimit" or "prctl" or "futex" or "statfs" or "fstatfs" => Verdict.Replay,
        "open" => ReadOnly(a[1]) ? Verdict.Replay : Verdict.Stop,
        "openat" => ReadOnly(a[2]) ? Verdict.Replay : Verdict.Stop,
        "mmap" => (a[3] & MAP_TYPE) == MAP_PRIVATE ? Verdict.Replay : Verdict.Stop,       // private file or anonymous memory
        "fcntl" => a[1] is 1 or 2 or 3 ? Verdict.Replay : Verdict.Stop,            // F_GETFD, F_SETFD, F_GETFL
        "ioctl" => a[1] == 0x5401 ? Verdict.Replay : Verdict.Stop,                  // TCGETS: the isatty() query
        "prlimit64" => a[2] == 0 ? Verdict.Replay : Verdict.Stop,                   // a query, not a change
        "brk" => Verdict.RefuseBrk,
        "clone" => (a[0] & CLONE_THREAD) != 0 ? Verdict.MultiThreaded : Verdict.Stop,
        "clone3" => Verdict.MultiThreaded,
        "exit" or "exit_group" => Verdict.Exit,
        _ => Verdict.Stop,
    };

    private static bool ReadOnly(ulong flags) => (flags & O_ACCMODE) == 0 && (flags & (O_CREAT | O_TRUNC)) == 0;

    public ProcessSnapshot Save(string program, IReadOnlyList<string> arguments, string path, SnapshotMemory include,
        string? stdin = null, string? stdout = null, string? stderr = null, Action<long, long>? progress = null, CancellationToken cancel = default,
        string? workingDirectory = null)
    {
        var total = Stopwatch.StartNew();
        string exe = TraceeLauncher.ResolveProgram(program, workingDirectory);
        if (!TracerHost.RunsInPlace)
            return TracerClient.Run<ProcessSnapshot>(new TracerRequest
            {
                Operation = TracerOperation.LaunchSnapshot, Program = exe, Arguments = [.. arguments], OutputPath = Path.GetFullPath(path),
                Include = include, StandardInput = stdin, StandardOutput = stdout, StandardError = stderr, WorkingDirectory = workingDirectory,
            }, _log, progress, cancel);
        using var session = new PtraceSession(_log);
        int pid = session.Launch(exe, arguments, PtraceOptions.SysGood | PtraceOptions.Exec, workingDirectory, stdin, stdout, stderr);
        bool complete = false;
        try
        {
            LibC.kill(pid, LibC.SIGCONT);
            var stop = RunUntilUnreplayable(session, pid, program, cancel);
            // The first unreplayable call: the program stays at this syscall-entry stop while it is written.
            string call = $"{stop.Name}({string.Join(", ", stop.Info.Args.Take(ArgCount(stop.Name)).Select(v => $"0x{v:x}"))})";
            _log.LogInformation("{Program} stopped at its first unreplayable system call {Call}, after {Replayed} replayable ones ({Brk} brk refused).",
                program, call, stop.Replayed, stop.BrkRefused);
            var snapshot = Write(session, pid, path, include, progress, cancel, stop, total);
            complete = true;
            return snapshot with { StoppedAtSyscall = call, StoppedAtSyscallNumber = (int)stop.Info.Number };
        }
        finally
        {
            // The program ends here in every case (it was only run to be snapshotted).
            session.KillAndReap(pid, TimeSpan.FromSeconds(5));
            if (!complete)
            {
                try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }
    }

    /// <summary>Where the program stopped: the syscall-entry stop of its first unreplayable call, and what it did before.</summary>
    private sealed record Unreplayable(SyscallInfo Info, string Name, ulong TidAddress, int BrkRefused, int Replayed);

    /// <summary>Runs the launched program from its execve, replaying or refusing its calls, until one cannot be replayed.</summary>
    private static Unreplayable RunUntilUnreplayable(PtraceSession session, int pid, string program, CancellationToken cancel)
    {
        int brkRefused = 0, replayed = 0;
        ulong tidAddress = 0;
        bool execDone = false, pendingBrk = false;
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            if (session.WaitFor(pid, TimeSpan.FromMinutes(5), cancel) is not { } status)
            {
                cancel.ThrowIfCancellationRequested();
                throw new TargetBusyException($"{program} made no system call for 5 minutes before its first unreplayable one.");
            }
            if (status.Ended)
                throw new LinuxTraceException($"{program} exited before its first unreplayable system call ({status}); there is nothing to snapshot.");
            if (status.Event == PtraceEvent.Exec) { execDone = true; session.ContinueToSyscall(pid); continue; }
            if (status.Event == PtraceEvent.Stop) { session.ContinueToSyscall(pid); continue; }  // group-stop of the launcher, SIGCONT resumes it
            if (!status.IsSyscallStop)
            {
                session.ContinueToSyscall(pid, status.StopSignal == LibC.SIGTRAP ? 0 : status.StopSignal); // deliver the program's own signals
                continue;
            }
            var info = session.GetSyscallInfo(pid);
            if (!execDone) { session.ContinueToSyscall(pid); continue; }
            if (info.IsExit)
            {
                if (pendingBrk)
                {
                    // brk refused: return 0 (below any request), so malloc falls back to mmap.
                    var r = session.GetRegisters(pid);
                    r.rax = 0;
                    session.SetRegisters(pid, r);
                    pendingBrk = false;
                }
                session.ContinueToSyscall(pid);
                continue;
            }
            string name = SyscallTable.Name((long)info.Number);
            var args = info.Args;
            switch (Classify(name, args))
            {
                case Verdict.Replay:
                    if (name == "set_tid_address") tidAddress = args[0];
                    replayed++;
                    session.ContinueToSyscall(pid);
                    continue;
                case Verdict.RefuseBrk:
                {
                    var r = session.GetRegisters(pid);
                    r.orig_rax = ulong.MaxValue; // skip the call
                    session.SetRegisters(pid, r);
                    pendingBrk = true;
                    brkRefused++;
                    session.ContinueToSyscall(pid);
                    continue;
                }
                case Verdict.MultiThreaded:
                    throw new UnsupportedFeatureException("Launch snapshots of multi-threaded programs", null,
                        $"{program} starts a thread ({name}) before its first unreplayable system call; a restore could not recreate it. Take a live snapshot (-Id) instead.");
                case Verdict.Exit:
                    throw new LinuxTraceException($"{program} called {name} before any unreplayable system call; there is nothing to snapshot.");
            }
            return new Unreplayable(info, name, tidAddress, brkRefused, replayed);
        }
    }

    /// <summary>
    /// The PSLINUXTRACE note: what a restorer needs beyond the core (fs base, tid address, the pending
    /// syscall, the open files), as JSON. Written with Utf8JsonWriter: the tracer process is NativeAOT,
    /// where reflection-based serialization is not available.
    /// </summary>
    private static byte[] RestoreNote(int pid, UserRegsX64 regs, SyscallInfo info, string name, ulong tidAddress, int brkRefused, int replayed)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("format", "pslinuxtrace-launch-snapshot/1");
            w.WriteNumber("fsBase", regs.fs_base);
            w.WriteNumber("tidAddress", tidAddress);
            w.WriteStartObject("syscall");
            w.WriteNumber("number", info.Number);
            w.WriteString("name", name);
            w.WriteStartArray("args");
            foreach (ulong a in info.Args) w.WriteNumberValue(a);
            w.WriteEndArray();
            w.WriteNumber("ip", info.InstructionPointer);
            w.WriteNumber("sp", info.StackPointer);
            w.WriteEndObject();
            w.WriteStartArray("files");
            foreach (string fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
            {
                string n = Path.GetFileName(fd);
                var fdinfo = File.ReadAllLines($"/proc/{pid}/fdinfo/{n}").Select(l => l.Split(':', 2)).Where(a => a.Length == 2)
                    .ToDictionary(a => a[0].Trim(), a => a[1].Trim());
                w.WriteStartObject();
                w.WriteNumber("fd", int.Parse(n));
                w.WriteString("path", new FileInfo(fd).LinkTarget);
                w.WriteString("flags", fdinfo.GetValueOrDefault("flags"));
                w.WriteString("pos", fdinfo.GetValueOrDefault("pos"));
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNumber("brkRefused", brkRefused);
            w.WriteNumber("replayedSyscalls", replayed);
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static int ArgCount(string name) => name switch
    {
        "write" or "read" or "open" or "lseek" or "ioctl" or "fcntl" or "connect" or "bind" or "socket" or "mkdir" or "execve" => 3,
        "openat" or "sendto" or "recvfrom" or "mmap" => name == "mmap" ? 6 : 4,
        "close" or "exit_group" or "exit" or "unlink" or "rmdir" or "dup" or "pipe" or "chdir" => 1,
        _ => 6,
    };

    private static ProcessSnapshot Write(PtraceSession session, int pid, string path, SnapshotMemory include, Action<long, long>? progress,
        CancellationToken cancel, Unreplayable stop, Stopwatch total)
    {
        var regs = session.GetRegisters(pid);
        var image = new CoreImage
        {
            Pid = pid,
            Comm = ProcFs.ReadComm(pid),
            Arguments = string.Join(' ', ProcFs.ReadCommandLine(pid)),
            Auxv = ProcFs.ReadBytes(pid, "auxv"),
            State = 't',
        };
        var status = ProcFs.ReadStatus(pid);
        image.ParentPid = status.ParentPid;
        image.Uid = status.RealUid;
        image.Gid = status.RealGid;
        image.Threads.Add(CoreImageCollector.ThreadOf(session, pid));
        CoreImageCollector.AddSegments(image, ProcFs.ReadMaps(pid), pid, include);
        image.ExtraNotes.Add((Cores.CoreDumpReader.SnapshotNoteName, Cores.CoreDumpReader.RestoreStateNoteType,
            RestoreNote(pid, regs, stop.Info, stop.Name, stop.TidAddress, stop.BrkRefused, stop.Replayed)));
        var sw = Stopwatch.StartNew();
        using var output = CoreWriter.CreateFile(path);
        var (fileSize, unreadable) = CoreWriter.Write(output, image, (a, b) => RemoteMemory.Read(pid, a, b), progress, cancel);
        long memory = image.Segments.Sum(s => (long)s.DumpSize);
        return new ProcessSnapshot(Path.GetFullPath(path), pid, 1, image.Segments.Count, fileSize, memory, sw.Elapsed, total.Elapsed,
            "LaunchUntilUnreplayable", []) { UnreadableBytes = unreadable };
    }
}
