using System.Globalization;
using System.Text;
using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Procfs;

/// <summary>
/// Reads files under /proc/PID. A process that is gone becomes <see cref="ProcessNotFoundException"/>,
/// a process we may not look at becomes <see cref="TargetPermissionDeniedException"/>, in one place.
/// </summary>
public static class ProcFs
{
    public const string Root = "/proc";

    /// <summary>Pids of every process (thread-group leaders), ascending.</summary>
    public static List<int> ListProcesses()
    {
        var pids = new List<int>(512);
        foreach (string dir in Directory.EnumerateDirectories(Root))
        {
            var name = dir.AsSpan(Root.Length + 1);
            if (name.Length > 0 && char.IsAsciiDigit(name[0]) && int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                pids.Add(pid);
        }
        pids.Sort();
        return pids;
    }

    /// <summary>Thread ids of a process (/proc/PID/task).</summary>
    public static List<int> ListThreads(int pid)
    {
        var tids = new List<int>();
        try
        {
            foreach (string dir in Directory.EnumerateDirectories($"{Root}/{pid}/task"))
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int tid)) tids.Add(tid);
        }
        catch (DirectoryNotFoundException ex) { throw new ProcessNotFoundException(pid, null, ex); }
        tids.Sort();
        return tids;
    }

    public static bool Exists(int pid) => pid > 0 && Directory.Exists($"{Root}/{pid}");

    /// <summary>
    /// Calls <paramref name="add"/> once for each thread of <paramref name="tgid"/>; with <paramref name="untilStable"/>
    /// the threads are listed again until a pass finds no new one (threads started while the others were being
    /// added). A listing that fails after the first pass (the process exited meanwhile) ends it; the first throws.
    /// Returns how many threads were seen.
    /// </summary>
    public static int ForEachThread(int tgid, bool untilStable, Action<int> add)
    {
        var seen = new HashSet<int>();
        for (bool more = true; more;)
        {
            more = false;
            List<int> threads;
            try { threads = ListThreads(tgid); }
            catch (LinuxTraceException) when (seen.Count > 0) { break; }
            foreach (int tid in threads)
            {
                if (!seen.Add(tid)) continue;
                more = true;
                add(tid);
            }
            if (!untilStable) break;
        }
        return seen.Count;
    }

    /// <summary>Reads a whole /proc file of <paramref name="pid"/> (they report size 0, so read until EOF).</summary>
    public static byte[] ReadBytes(int pid, string file)
    {
        string path = $"{Root}/{pid}/{file}";
        int fd = LibC.open(path, LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        if (fd < 0) throw Fail(Errno.Last, pid, path);
        try
        {
            var buffer = new byte[file == "maps" ? 65536 : 4096];
            int used = 0;
            while (true)
            {
                if (used == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2);
                nint n = LibC.Read(fd, buffer.AsSpan(used));
                if (n < 0)
                {
                    int e = Errno.Last;
                    if (e == Errno.EINTR) continue;
                    throw Fail(e, pid, path);
                }
                if (n == 0) break;
                used += (int)n;
            }
            Array.Resize(ref buffer, used);
            return buffer;
        }
        finally
        {
            LibC.close(fd);
        }
    }

    public static string ReadText(int pid, string file) => Encoding.UTF8.GetString(ReadBytes(pid, file));

    private static LinuxTraceException Fail(int errno, int pid, string path) => errno switch
    {
        Errno.ENOENT or Errno.ESRCH => new ProcessNotFoundException(pid),
        _ => Errno.ToException(errno, $"reading {path}", pid),
    };

    /// <summary>
    /// The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses, so it
    /// is skipped at the last ')'): index 0 is field 3 (state), so field N of proc(5) is at N - 3.
    /// </summary>
    public static string[] ReadStatFields(int pid)
    {
        string stat = ReadText(pid, "stat");
        return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    }

    /// <summary>The memory mappings of a process.</summary>
    public static List<MemoryMapping> ReadMaps(int pid) => MemoryMapping.ParseAll(ReadText(pid, "maps"));

    /// <summary>/proc/PID/comm without its newline (the 15-character task name).</summary>
    public static string ReadComm(int pid) => ReadText(pid, "comm").TrimEnd('\n');

    /// <summary>/proc/PID/cmdline split at NULs; empty for kernel threads and zombies.</summary>
    public static string[] ReadCommandLine(int pid)
    {
        var bytes = ReadBytes(pid, "cmdline");
        if (bytes.Length == 0) return Array.Empty<string>();
        int len = bytes[^1] == 0 ? bytes.Length - 1 : bytes.Length;
        return Encoding.UTF8.GetString(bytes, 0, len).Split('\0');
    }

    public static ProcessStatus ReadStatus(int pid) => ProcessStatus.Parse(pid, ReadText(pid, "status"));

    /// <summary>The target of /proc/PID/exe (" (deleted)" kept as the kernel writes it), or null when unreadable.</summary>
    public static string? ReadExeLink(int pid)
    {
        try { return new FileInfo($"{Root}/{pid}/exe").LinkTarget; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}
