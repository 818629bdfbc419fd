namespace PSLinuxTrace.Engine.Procfs;

/// <summary>
/// Whether threads and processes are alive, from /proc alone (no wait, so nothing is collected):
/// what a tracer asks when a task it waits for says nothing, since a killed thread of a multi-threaded
/// process reports nothing while its siblings wait for their tracer to reap them.
/// </summary>
public static class ProcessLiveness
{
    /// <summary>The one-letter state of a thread from /proc/PID/task/TID/stat ('t' = ptrace stop), or '\0' when gone.</summary>
    public static char ThreadState(int pid, int tid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/task/{tid}/stat");
            int close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length ? stat[close + 2] : '\0';
        }
        catch (IOException) { return '\0'; }
        catch (UnauthorizedAccessException) { return '\0'; }
    }

    /// <summary>Whether a thread has exited: a zombie, dead, or gone from /proc.</summary>
    public static bool HasExited(int pid, int tid) => ThreadState(pid, tid) is 'Z' or 'X' or '\0';

    /// <summary>Whether every thread of the process has exited (or the process is gone).</summary>
    public static bool IsDead(int pid)
    {
        try { return ProcFs.ListThreads(pid).All(t => HasExited(pid, t)); }
        catch (ProcessNotFoundException) { return true; }
    }

    /// <summary>Whether a thread is dying or dead (polls briefly: a SIGKILLed thread is still 'R' for a moment).</summary>
    public static bool IsExiting(int pid, int tid) =>
        Within(TimeSpan.FromMilliseconds(500), () => HasExited(pid, tid) || !ProcFs.Exists(pid));

    /// <summary>Polls <paramref name="condition"/> every 10 ms until it holds (true) or <paramref name="timeout"/> passes (false).</summary>
    public static bool Within(TimeSpan timeout, Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow >= deadline) return false;
            Thread.Sleep(10);
        }
        return true;
    }
}
