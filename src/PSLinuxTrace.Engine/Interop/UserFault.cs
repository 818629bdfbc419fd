using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

/// <summary>
/// userfaultfd(2) in asynchronous write-protect mode (UFFD_FEATURE_WP_ASYNC, Linux 6.7) and the
/// PAGEMAP_SCAN ioctl of /proc/PID/pagemap that reads it back: the kernel's own way to learn which
/// pages a running process wrote since a moment, without stopping it or handling its faults (a write
/// to a protected page is resolved in the kernel, which only clears the page's protect bit).
/// A userfaultfd belongs to the address space of the process that created it; every ioctl below acts
/// on that address space, whichever process calls it.
/// </summary>
internal static unsafe partial class UserFault
{
    internal const int SYS_userfaultfd = 323, SYS_pidfd_open = 434, SYS_pidfd_getfd = 438;
    /// <summary>userfaultfd() flags: O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY (allowed without CAP_SYS_PTRACE).</summary>
    internal const ulong CreateFlags = 0x80000 | 0x800 | 1;
    private const ulong UFFD_API = 0xAA, UFFD_FEATURE_WP_ASYNC = 1UL << 15;
    private const ulong UFFDIO_API = 0xc018aa3f, UFFDIO_REGISTER = 0xc020aa00, UFFDIO_UNREGISTER = 0x8010aa01,
        UFFDIO_WRITEPROTECT = 0xc018aa06, PAGEMAP_SCAN = 0xc0606610;
    private const ulong UFFDIO_REGISTER_MODE_WP = 2, UFFDIO_WRITEPROTECT_MODE_WP = 1;
    internal const ulong PM_SCAN_WP_MATCHING = 1;
    internal const ulong PAGE_IS_WPALLOWED = 1, PAGE_IS_WRITTEN = 2, PAGE_IS_FILE = 4, PAGE_IS_PRESENT = 8, PAGE_IS_SWAPPED = 16, PAGE_IS_PFNZERO = 32;

    [StructLayout(LayoutKind.Sequential)]
    private struct uffdio_api { public ulong api, features, ioctls; }

    [StructLayout(LayoutKind.Sequential)]
    private struct uffdio_register { public ulong start, len, mode, ioctls; }

    [StructLayout(LayoutKind.Sequential)]
    private struct uffdio_range { public ulong start, len; }

    [StructLayout(LayoutKind.Sequential)]
    private struct uffdio_writeprotect { public ulong start, len, mode; }

    [StructLayout(LayoutKind.Sequential)]
    private struct pm_scan_arg
    {
        public ulong size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask, category_anyof_mask, return_mask;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct PageRegion { public ulong Start, End, Categories; }

    [LibraryImport(LibC.Lib, EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall3(long number, long a0, long a1, long a2);

    [LibraryImport(LibC.Lib, EntryPoint = "ioctl", SetLastError = true)]
    private static partial int ioctl(int fd, ulong request, void* arg);

    /// <summary>
    /// Whether this kernel has asynchronous write-protect userfaultfds and PAGEMAP_SCAN: tried once in
    /// this process (a userfaultfd of our own, and a scan of our own pagemap).
    /// </summary>
    internal static bool IsSupported => Supported.Value;

    private static readonly Lazy<bool> Supported = new(() =>
    {
        int fd = (int)syscall3(SYS_userfaultfd, (long)CreateFlags, 0, 0);
        if (fd < 0) return false;
        using var uffd = new SafeFileDescriptor(fd);
        if (EnableAsyncWriteProtect(uffd) != 0) return false;
        if (OpenPagemap(Environment.ProcessId, out var pagemap) != 0) return false;
        using var scanned = pagemap!;
        ulong page = (ulong)Environment.SystemPageSize;
        ulong at = (ulong)(nint)(&page) / page * page; // a page of our stack: mapped for sure
        Span<PageRegion> one = stackalloc PageRegion[1];
        return Scan(scanned, at, at + page, 0, 0, 0, 0, one, out _) >= 0;
    });

    /// <summary>A copy, in this process, of descriptor <paramref name="remoteFd"/> of process <paramref name="pid"/> (pidfd_getfd), or -errno.</summary>
    internal static int TakeDescriptor(int pid, int remoteFd, out SafeFileDescriptor? fd)
    {
        fd = null;
        int pidfd = (int)syscall3(SYS_pidfd_open, pid, 0, 0);
        if (pidfd < 0) return -Marshal.GetLastPInvokeError();
        using var handle = new SafeFileDescriptor(pidfd);
        int copy = (int)syscall3(SYS_pidfd_getfd, pidfd, remoteFd, 0);
        if (copy < 0) return -Marshal.GetLastPInvokeError();
        fd = new SafeFileDescriptor(copy);
        return 0;
    }

    /// <summary>Opens /proc/PID/pagemap for PAGEMAP_SCAN; 0 or errno.</summary>
    internal static int OpenPagemap(int pid, out SafeFileDescriptor? fd)
    {
        int pm = LibC.open($"/proc/{pid}/pagemap", 0, 0);
        fd = pm < 0 ? null : new SafeFileDescriptor(pm);
        return pm < 0 ? Marshal.GetLastPInvokeError() : 0;
    }

    /// <summary>UFFDIO_API with UFFD_FEATURE_WP_ASYNC; 0 or errno.</summary>
    internal static int EnableAsyncWriteProtect(SafeFileDescriptor uffd)
    {
        var api = new uffdio_api { api = UFFD_API, features = UFFD_FEATURE_WP_ASYNC };
        return Ioctl(uffd, UFFDIO_API, &api);
    }

    /// <summary>UFFDIO_REGISTER in write-protect mode; 0 or errno.</summary>
    internal static int Register(SafeFileDescriptor uffd, ulong start, ulong length)
    {
        var r = new uffdio_register { start = start, len = length, mode = UFFDIO_REGISTER_MODE_WP };
        return Ioctl(uffd, UFFDIO_REGISTER, &r);
    }

    /// <summary>UFFDIO_UNREGISTER (which also clears the pages' protect bits); 0 or errno.</summary>
    internal static int Unregister(SafeFileDescriptor uffd, ulong start, ulong length)
    {
        var r = new uffdio_range { start = start, len = length };
        return Ioctl(uffd, UFFDIO_UNREGISTER, &r);
    }

    /// <summary>UFFDIO_WRITEPROTECT: protects (or releases) every page of the range; 0 or errno.</summary>
    internal static int WriteProtect(SafeFileDescriptor uffd, ulong start, ulong length, bool protect)
    {
        var r = new uffdio_writeprotect { start = start, len = length, mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0 };
        return Ioctl(uffd, UFFDIO_WRITEPROTECT, &r);
    }

    /// <summary>
    /// One PAGEMAP_SCAN of [start, end): fills <paramref name="regions"/> with runs of pages whose
    /// categories (after XOR with <paramref name="inverted"/>) contain all of <paramref name="all"/> and,
    /// when not 0, one of <paramref name="any"/>. Returns how many regions it wrote (or -errno), and in
    /// <paramref name="walkEnd"/> where it stopped (the end, unless <paramref name="regions"/> filled up).
    /// </summary>
    internal static int Scan(SafeFileDescriptor pagemap, ulong start, ulong end, ulong flags, ulong inverted, ulong all, ulong any,
        Span<PageRegion> regions, out ulong walkEnd)
    {
        fixed (PageRegion* v = regions)
        {
            var a = new pm_scan_arg
            {
                size = (ulong)sizeof(pm_scan_arg), flags = flags, start = start, end = end,
                vec = (ulong)(nint)v, vec_len = (ulong)regions.Length,
                category_inverted = inverted, category_mask = all, category_anyof_mask = any,
                return_mask = PAGE_IS_WPALLOWED | PAGE_IS_WRITTEN | PAGE_IS_FILE | PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO,
            };
            int n = ioctl(pagemap.Fd, PAGEMAP_SCAN, &a);
            walkEnd = a.walk_end;
            return n < 0 ? -Marshal.GetLastPInvokeError() : n;
        }
    }

    private static int Ioctl(SafeFileDescriptor fd, ulong request, void* arg) =>
        ioctl(fd.Fd, request, arg) == 0 ? 0 : Marshal.GetLastPInvokeError();
}
