using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Bpf;

/// <summary>Where tracefs is, mounting it when it is not (as root), and tracepoint ids.</summary>
public static class Tracefs
{
    private static readonly string[] Candidates = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
    private static readonly object Gate = new();

    /// <summary>The tracefs root that has events/, mounting /sys/kernel/tracing if none does.</summary>
    public static string Root()
    {
        lock (Gate)
        {
            foreach (string c in Candidates)
                if (Directory.Exists(Path.Combine(c, "events"))) return c;
            // Not mounted: mount it (root only), as `mount -t tracefs tracefs /sys/kernel/tracing` does.
            if (Directory.Exists(Candidates[0]) && LibC.mount("tracefs", Candidates[0], "tracefs", 0, 0) == 0
                && Directory.Exists(Path.Combine(Candidates[0], "events")))
                return Candidates[0];
            int e = Errno.Last;
            const string fix = "Mount it with: mount -t tracefs tracefs /sys/kernel/tracing (as root).";
            if (e is Errno.EPERM or Errno.EACCES)
                throw new TargetPermissionDeniedException("tracefs is not mounted and mounting it needs root (CAP_SYS_ADMIN). " + fix, "CAP_SYS_ADMIN");
            throw new UnsupportedFeatureException("tracefs", null, $"not mounted at /sys/kernel/tracing and mounting failed ({Errno.Name(e)}). " + fix);
        }
    }

    /// <summary>The id of a tracepoint such as "syscalls/sys_enter_execve".</summary>
    public static int TracepointId(string tracepoint)
    {
        string path = Path.Combine(Root(), "events", tracepoint, "id");
        try
        {
            return int.Parse(File.ReadAllText(path).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (FileNotFoundException)
        {
            throw new UnsupportedFeatureException($"tracepoint {tracepoint}", null, $"{path} does not exist (CONFIG_FTRACE_SYSCALLS off?)");
        }
        catch (DirectoryNotFoundException)
        {
            throw new UnsupportedFeatureException($"tracepoint {tracepoint}", null, $"{path} does not exist (CONFIG_FTRACE_SYSCALLS off?)");
        }
        catch (UnauthorizedAccessException)
        {
            throw new TargetPermissionDeniedException($"Permission denied reading {path}; tracefs needs root.", "CAP_SYS_ADMIN");
        }
    }
}
