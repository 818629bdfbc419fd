using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

internal static partial class LibC
{
    internal const string Lib = "libc";

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int close(int fd);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int open(string pathname, int flags, int mode);

    [LibraryImport(Lib, SetLastError = true)]
    internal static unsafe partial nint read(int fd, void* buf, nint count);

    [LibraryImport(Lib, SetLastError = true)]
    internal static unsafe partial nint pread(int fd, void* buf, nint count, long offset);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int ioctl(int fd, ulong request, nint arg);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int getpid();

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int gettid();

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial uint geteuid();

    /// <summary>read(2) into a span; returns the count or -1 with errno set.</summary>
    internal static unsafe nint Read(int fd, Span<byte> buffer)
    {
        fixed (byte* p = buffer) return read(fd, p, buffer.Length);
    }

    internal const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0x40, O_TRUNC = 0x200,
        O_CLOEXEC = 0x80000, O_NONBLOCK = 0x800;
}

internal static partial class LibC
{
    /// <summary>pread(2) into a span at <paramref name="offset"/>; returns the count or -1 with errno set.</summary>
    internal static unsafe nint PRead(SafeFileDescriptor fd, Span<byte> buffer, long offset)
    {
        fixed (byte* p = buffer) return pread(fd.Fd, p, buffer.Length, offset);
    }
}
