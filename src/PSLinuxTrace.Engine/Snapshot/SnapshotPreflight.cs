using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;

namespace PSLinuxTrace.Engine.Snapshot;

/// <summary>
/// What is decided about a live snapshot before the process is touched: whether it can be snapshotted
/// at all, which method Auto means for it, and whether a system call may be injected into it.
/// </summary>
internal static class SnapshotPreflight
{
    /// <summary>
    /// Anonymous memory above which Auto tracks writes rather than making a twin: the twin's fork copies the page
    /// tables while the process is stopped, about 9 ms per GiB here (18 ms of a 27 ms pause at 2 GiB), so past
    /// 4 GiB it alone would near the 50 ms a pause should stay under. Up to it, the twin is faster and gentler
    /// (bench/snapshot: 116-123 against 139-198 ms at 512 MiB, 0.42-0.55 against 0.71-0.80 s at 2 GiB, and the process's
    /// own longest delay 78-102 against 219-244 ms), and needs no userfaultfd.
    /// </summary>
    internal const long AutoTwinLimitKb = 4L << 20;

    /// <summary>What Auto means for a process with <paramref name="anonymousKb"/> of anonymous memory resident.</summary>
    internal static SnapshotMethod ChooseAuto(long anonymousKb) =>
        anonymousKb > AutoTwinLimitKb ? SnapshotMethod.WriteTracked : SnapshotMethod.CloneTwin;

    /// <summary>RssAnon ("123 kB") of /proc/PID/status, in kB: the private memory a fork's page-table copy scales with; 0 when unknown.</summary>
    internal static long AnonymousResidentKb(ProcessStatus? status) =>
        status is not null && status.Fields.TryGetValue("RssAnon", out var value) &&
        long.TryParse(value.Split(' ')[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long kb)
            ? kb : 0;

    /// <summary>
    /// Refuses, before any file is created, what ptrace would refuse with a bare EPERM that reads like
    /// a missing capability: a process that has already exited (a zombie: nothing left to dump) and a
    /// kernel thread (no user memory). Returns the status it read (null when unreadable: ptrace will say why).
    /// </summary>
    internal static ProcessStatus? Check(int pid)
    {
        ProcessStatus status;
        try { status = ProcFs.ReadStatus(pid); }
        catch (ProcessNotFoundException) { throw; }
        catch (LinuxTraceException) { return null; }
        if (status.Fields.TryGetValue("Kthread", out var kthread) && kthread == "1")
            throw new UnsupportedFeatureException("Snapshotting a kernel thread", null, $"process {pid} is a kernel thread: it has no user memory and cannot be traced.", byKernel: false);
        bool zombie = status.State is 'Z' or 'X';
        int threads = status.Threads > 0 ? status.Threads : 1;
        if (zombie && threads <= 1)
            throw new ProcessNotFoundException(pid, $"Process {pid} has exited (it is a zombie waiting for its parent); it has no memory left to snapshot.");
        // A leader that called pthread_exit is a zombie too while its other threads run on; ptrace cannot
        // stop an exited thread, and /proc/PID shows no memory through it.
        // A killed process also shows a zombie leader for a moment while its other threads die.
        if (zombie && ProcessLiveness.Within(TimeSpan.FromMilliseconds(500), () => ProcessLiveness.IsDead(pid)))
            throw new ProcessNotFoundException(pid, $"Process {pid} has exited; it has no memory left to snapshot.");
        if (zombie)
            throw new UnsupportedFeatureException("Snapshotting a process whose main thread has exited", null,
                $"the main thread of process {pid} has exited while its other {threads - 1} thread(s) run on; ptrace cannot stop an exited thread.", byKernel: false);
        return status;
    }

    /// <summary>
    /// Why no system call may be injected into <paramref name="tid"/>, or null: under seccomp (strict mode,
    /// or a filter such as systemd's SystemCallFilter= or a container's profile) the kernel checks injected
    /// calls like the thread's own, and a filter may answer clone() or wait4() by killing the process.
    /// </summary>
    internal static string? InjectionRisk(int pid, int tid)
    {
        string mode;
        try { mode = ProcessStatus.Parse(tid, ProcFs.ReadText(pid, $"task/{tid}/status")).Fields.GetValueOrDefault("Seccomp", "0"); }
        catch (LinuxTraceException) { return null; }
        if (mode == "0") return null;
        string what = mode == "1" ? "seccomp strict mode" : "a seccomp filter";
        return $"Process {pid} runs under {what}, which could refuse an injected system call or kill the process for it; " +
            "so nothing is injected and the process stays stopped while its memory is read (PausedFor covers the whole read).";
    }

    /// <summary>Whether the process holds a userfaultfd of its own (then its memory is not tracked: a twin is made instead).</summary>
    internal static bool UsesUserfaultfd(int pid)
    {
        try
        {
            foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
                if (new FileInfo(fd).LinkTarget == "anon_inode:[userfaultfd]") return true;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return false;
    }
}
