using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Syscalls;

namespace PSLinuxTrace.Engine.Tracing.Bpf;

/// <summary>
/// fd paths for the eBPF engine, which decodes a call after it happened, when the fd may be closed
/// or reused. The kernel program copies each fd's inode and device at the call; a path is shown only
/// when it is known to name that file: readlink of /proc/PID/fd/N taken when stat of the same link
/// still gives the file, or the canonical form of the path an open() was given, checked the same
/// way. Paths are remembered per process and file, so later calls on the fd, and on a reused fd
/// number, show the right file. When nothing can be checked, the fd shows as its number alone.
/// </summary>
internal sealed class FdPathResolver
{
    public const long AtFdCwd = -100;
    private const int MaxEntries = 1 << 16;
    private readonly Dictionary<(int Tgid, FileIdentity File), string> _paths = new();

    /// <summary>The path of <paramref name="fd"/> (AT_FDCWD: the cwd) of a task when it referred to <paramref name="file"/>, or null.</summary>
    public string? Resolve(int tgid, int tid, long fd, FileIdentity file)
    {
        if (_paths.TryGetValue((tgid, file), out string? known)) return known;
        string link = fd == AtFdCwd ? $"/proc/{tid}/cwd" : $"/proc/{tid}/fd/{fd}";
        string? target = LiveTracee.ReadLink(link);
        // The file after the readlink: had the fd changed in between, this differs or names the new file.
        if (target is null || !file.IsAt(link)) return null;
        Remember(tgid, file, target);
        return target;
    }

    /// <summary>
    /// After open(path) returned an fd that refers to <paramref name="file"/>: opens the same path from
    /// here (O_PATH, relative to the tracee's cwd or dirfd through /proc) and, when it is the same
    /// file, remembers its canonical path, so the fd has a path even once it is closed.
    /// </summary>
    public void LearnFromOpen(int tgid, int tid, string path, long dirFd, bool followLastLink, FileIdentity file)
    {
        if (file.Inode == 0 || path.Length == 0 || _paths.ContainsKey((tgid, file))) return;
        string from = path[0] == '/' ? path
            : dirFd == AtFdCwd ? $"/proc/{tid}/cwd/{path}" : $"/proc/{tid}/fd/{dirFd}/{path}";
        if (LibC.TryCanonicalPath(from, followLastLink, out string canonical, out ulong dev, out ulong ino)
            && ino == file.Inode && dev == LibC.UserDevice(file.Device))
            Remember(tgid, file, canonical);
    }

    /// <summary>Forgets a process (it exited).</summary>
    public void Forget(int tgid)
    {
        if (_paths.Count == 0) return;
        foreach (var key in _paths.Keys.Where(k => k.Tgid == tgid).ToList()) _paths.Remove(key);
    }

    private void Remember(int tgid, FileIdentity file, string path)
    {
        if (_paths.Count >= MaxEntries) _paths.Clear();   // a bound for traces of huge file trees; paths are then looked up again
        _paths[(tgid, file)] = path;
    }
}
