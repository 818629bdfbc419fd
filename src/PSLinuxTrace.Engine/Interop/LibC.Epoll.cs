using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

internal static unsafe partial class LibC
{
    internal const int EPOLL_CLOEXEC = 0x80000, EPOLL_CTL_ADD = 1;
    internal const uint EPOLLIN = 1;

    // struct epoll_event { uint32_t events; epoll_data_t data; } is packed (12 bytes) on x86_64 only,
    // 16 bytes elsewhere; callers pass a 16-byte buffer per event and read only `events`.
    internal const int EpollEventMaxSize = 16;

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int epoll_create1(int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int epoll_ctl(int epfd, int op, int fd, void* ev);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int epoll_wait(int epfd, void* events, int maxevents, int timeout);
}
