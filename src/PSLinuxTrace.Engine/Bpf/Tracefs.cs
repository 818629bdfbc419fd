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
            // Mounted but not searchable: tracefs's root is mode 0700 root (fs/tracefs/inode.c), so a process
            // without CAP_DAC_READ_SEARCH sees no events/ even with CAP_BPF and CAP_PERFMON; mounting again would only fail.
            if (MountedTracefs() is { } mounted)
                throw new TargetPermissionDeniedException(
                    $"Permission denied reading {mounted}/events: tracefs is mounted there, but only its owner (root) may read it, and reading the tracepoint ids in it " +
                    "needs CAP_DAC_READ_SEARCH (or CAP_DAC_OVERRIDE) besides CAP_BPF and CAP_PERFMON.", "CAP_DAC_READ_SEARCH",
                    recommendedAction: "Run as root (sudo), or grant CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH (for example setpriv --inh-caps=+bpf,+perfmon,+dac_read_search --ambient-caps=+bpf,+perfmon,+dac_read_search).");
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
            // The id files are mode 0440 root: a permission matter (CAP_DAC_READ_SEARCH), not CAP_SYS_ADMIN.
            throw new TargetPermissionDeniedException($"Permission denied reading {path}: only root may read tracefs's tracepoint ids, and this process lacks CAP_DAC_READ_SEARCH.", "CAP_DAC_READ_SEARCH");
        }
    }

    /// <summary>The first candidate where /proc/self/mountinfo shows a tracefs mount (field 5 is the mount point, the part after " - " starts with the type).</summary>
    private static string? MountedTracefs()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/mountinfo"))
            {
                string[] fields = line.Split(' ');
                int dash = Array.IndexOf(fields, "-");
                if (fields.Length > 4 && dash > 4 && dash + 1 < fields.Length && fields[dash + 1] == "tracefs" && Candidates.Contains(fields[4]))
                    return fields[4];
            }
        }
        catch (IOException) { }
        return null;
    }
}
