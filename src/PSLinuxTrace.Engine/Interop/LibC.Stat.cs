using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

internal static unsafe partial class LibC
{
    internal const int O_PATH = 0x200000, O_NOFOLLOW = 0x20000;

    // struct stat begins { dev_t st_dev; ino_t st_ino; ... } on x86_64 and on arm64 (asm-generic);
    // 256 bytes is more than either's whole struct.
    private const int StatBufferSize = 256;

    [LibraryImport(Lib, EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int stat_(string path, byte* buf);

    [LibraryImport(Lib, EntryPoint = "fstat", SetLastError = true)]
    private static partial int fstat_(int fd, byte* buf);

    [LibraryImport(Lib, EntryPoint = "readlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint readlink_(string path, byte* buf, nint size);

    /// <summary>The device and inode of what <paramref name="path"/> names, following symlinks (and /proc's fd links) as stat(2) does.</summary>
    internal static bool TryIdentity(string path, out ulong device, out ulong inode)
    {
        byte* buf = stackalloc byte[StatBufferSize];
        device = inode = 0;
        if (stat_(path, buf) != 0) return false;
        device = *(ulong*)buf;
        inode = *(ulong*)(buf + 8);
        return true;
    }

    /// <summary>
    /// A kernel dev_t (MAJOR &lt;&lt; 20 | MINOR, include/linux/kdev_t.h) as stat(2) reports it
    /// (new_encode_dev: minor's low byte, major, then minor's upper bits).
    /// </summary>
    internal static ulong UserDevice(uint kernelDev)
    {
        ulong major = kernelDev >> 20, minor = kernelDev & 0xfffff;
        return (minor & 0xff) | (major << 8) | ((minor & ~0xffUL) << 12);
    }

    /// <summary>
    /// Opens <paramref name="path"/> with O_PATH (no read access needed, no side effect such as a
    /// device's open) and returns the path the kernel gives the opened file (readlink of
    /// /proc/self/fd/N: symlinks and ".." resolved, as /proc/PID/fd shows a tracee's fds) and its inode.
    /// </summary>
    internal static bool TryCanonicalPath(string path, bool followLastLink, out string canonical, out ulong device, out ulong inode)
    {
        canonical = "";
        device = inode = 0;
        int fd = open(path, O_PATH | O_CLOEXEC | (followLastLink ? 0 : O_NOFOLLOW), 0);
        if (fd < 0) return false;
        try
        {
            byte* st = stackalloc byte[StatBufferSize];
            if (fstat_(fd, st) != 0) return false;
            device = *(ulong*)st;
            inode = *(ulong*)(st + 8);
            byte* buf = stackalloc byte[4096];
            nint n = readlink_($"/proc/self/fd/{fd}", buf, 4096);
            if (n <= 0 || n >= 4096) return false;
            canonical = System.Text.Encoding.UTF8.GetString(buf, (int)n);
            return true;
        }
        finally { close(fd); }
    }
}
