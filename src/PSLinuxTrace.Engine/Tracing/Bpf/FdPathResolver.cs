using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Syscalls;

namespace PSLinuxTrace.Engine.Tracing.Bpf;

/// <summary>
/// fd paths for the eBPF engine, which decodes a call after it happened, when the fd may be closed
/// or reused. The kernel program copies each fd's inode and device at the call; a path is shown only
/// when it is known to name that file: readlink of /proc/PID/fd/N taken when stat of the same link
/// still gives the file, or the canonical form of the path an open() was given, checked the same
/// way, or what /proc showed when the trace began. Paths are remembered per file, so later calls on
/// the fd, in any process, and on a reused fd number, show the right file; readlink gives a path from
/// our own root whichever process holds the fd, so one table serves every traced process. When
/// nothing can be checked, the fd shows as its number alone.
/// </summary>
internal sealed class FdPathResolver
{
    public const long AtFdCwd = -100;
    private const int MaxEntries = 1 << 16;
    private readonly Dictionary<FileIdentity, string> _paths = new();

    /// <summary>The path of <paramref name="fd"/> (AT_FDCWD: the cwd) of a task when it referred to <paramref name="file"/>, or null.</summary>
    public string? Resolve(int tid, long fd, FileIdentity file)
    {
        if (_paths.TryGetValue(file, out string? known)) return known;
        string link = fd == AtFdCwd ? $"/proc/{tid}/cwd" : $"/proc/{tid}/fd/{fd}";
        string? target = LiveTracee.ReadLink(link);
        // The file after the readlink: had the fd changed in between, this differs or names the new file.
        if (target is null || !file.IsAt(link)) return null;
        Remember(file, target);
        return target;
    }

    /// <summary>
    /// After open(path) returned an fd that refers to <paramref name="file"/>: opens the same path from
    /// here (O_PATH, relative to the tracee's cwd or dirfd through /proc) and, when it is the same
    /// file, remembers its canonical path, so the fd has a path even once it is closed.
    /// </summary>
    public void LearnFromOpen(int tid, string path, long dirFd, bool followLastLink, FileIdentity file)
    {
        if (file.Inode == 0 || path.Length == 0 || _paths.ContainsKey(file)) return;
        string from = path[0] == '/' ? path
            : dirFd == AtFdCwd ? $"/proc/{tid}/cwd/{path}" : $"/proc/{tid}/fd/{dirFd}/{path}";
        if (LibC.TryCanonicalPath(from, followLastLink, out string canonical, out ulong dev, out ulong ino)
            && ino == file.Inode && dev == LibC.UserDevice(file.Device))
            Remember(file, canonical);
    }

    /// <summary>What a process has open when the trace begins (fds it inherited, a redirected stdout), and its cwd.</summary>
    public void Seed(int pid)
    {
        string dir = $"/proc/{pid}/fd";
        IEnumerable<string> links;
        try { links = Directory.EnumerateFileSystemEntries(dir).Append($"/proc/{pid}/cwd").ToList(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return; }
        foreach (string link in links)
        {
            if (LiveTracee.ReadLink(link) is { } target && LibC.TryIdentity(link, out ulong dev, out ulong ino) && KernelDevice(dev) is { } kdev)
                Remember(new FileIdentity(ino, kdev), target);
        }
    }

    /// <summary>stat(2)'s st_dev back to the kernel's dev_t, the inverse of <see cref="LibC.UserDevice"/>.</summary>
    private static uint? KernelDevice(ulong user)
    {
        ulong major = (user >> 8) & 0xfff, minor = (user & 0xff) | ((user >> 12) & 0xfff00);
        uint k = (uint)((major << 20) | minor);
        return LibC.UserDevice(k) == user ? k : null;
    }

    private void Remember(FileIdentity file, string path)
    {
        if (_paths.Count >= MaxEntries) _paths.Clear();   // a bound for traces of huge file trees; paths are then looked up again
        _paths[file] = path;
    }
}
