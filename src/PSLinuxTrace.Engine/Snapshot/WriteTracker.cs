using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Snapshot;

/// <summary>
/// Learns which pages of a running process it writes, from a moment on, without stopping it: an
/// asynchronous write-protect userfaultfd of the process's address space (its writes to a protected
/// page are resolved by the kernel, which only clears the page's protect bit; the process is never
/// blocked or signalled) read back with PAGEMAP_SCAN. Disposing unregisters every range, which also
/// clears every protect bit: the address space is as it was.
/// </summary>
internal sealed class WriteTracker : IDisposable
{
    /// <summary>How much memory is unregistered at once: the kernel holds the address space's write lock meanwhile.</summary>
    private const ulong UnregisterChunk = 64UL << 20;
    private readonly SafeFileDescriptor _uffd, _pagemap;
    private readonly List<(ulong Start, ulong End)> _registered = new();
    private readonly ILogger _log;

    private WriteTracker(SafeFileDescriptor uffd, SafeFileDescriptor pagemap, ILogger log)
    {
        _uffd = uffd;
        _pagemap = pagemap;
        _log = log;
    }

    /// <summary>Whether this kernel can do it (Linux 6.7 or later with userfaultfd).</summary>
    public static bool IsSupported => UserFault.IsSupported;

    /// <summary>
    /// Takes over the userfaultfd <paramref name="remoteFd"/> that process <paramref name="pid"/> just created
    /// (the caller closes the process's own descriptor afterwards). Null, with the reason, when it cannot.
    /// </summary>
    public static WriteTracker? Open(int pid, int remoteFd, ILogger log, out string? why)
    {
        int r = UserFault.TakeDescriptor(pid, remoteFd, out var uffd);
        if (r < 0) { why = $"pidfd_getfd: {Errno.Name(-r)}"; return null; }
        int e = UserFault.EnableAsyncWriteProtect(uffd!);
        if (e != 0) { uffd!.Dispose(); why = $"UFFDIO_API: {Errno.Name(e)}"; return null; }
        e = UserFault.OpenPagemap(pid, out var pagemap);
        if (e != 0) { uffd!.Dispose(); why = $"/proc/{pid}/pagemap: {Errno.Name(e)}"; return null; }
        why = null;
        return new WriteTracker(uffd!, pagemap!, log);
    }

    /// <summary>
    /// Registers the mapping [start, end) (a whole mapping, so the kernel does not split it) for write
    /// tracking. False when the kernel refuses.
    /// </summary>
    public bool Register(ulong start, ulong end)
    {
        int e = UserFault.Register(_uffd, start, end - start);
        if (e != 0)
        {
            _log.LogDebug("Cannot track writes to {Start:x}-{End:x}: UFFDIO_REGISTER {Errno}.", start, end, Errno.Name(e));
            return false;
        }
        _registered.Add((start, end));
        return true;
    }

    /// <summary>
    /// Write-protects [start, end) of a registered mapping: from now on a write there is seen. Only pages
    /// that exist should be protected: protecting a range the process never touched makes the kernel build
    /// page tables for all of it (megabytes for a large reservation).
    /// </summary>
    public bool Protect(ulong start, ulong end)
    {
        int e = UserFault.WriteProtect(_uffd, start, end - start, protect: true);
        if (e != 0) _log.LogDebug("Cannot track writes to {Start:x}-{End:x}: UFFDIO_WRITEPROTECT {Errno}.", start, end, Errno.Name(e));
        return e == 0;
    }

    /// <summary>The runs of pages of [start, end) that are in memory or in swap (not never-touched ones).</summary>
    public List<(ulong Start, ulong End)> Populated(ulong start, ulong end) =>
        Collect(_pagemap, start, end, 0, 0, 0, UserFault.PAGE_IS_PRESENT | UserFault.PAGE_IS_SWAPPED).Select(r => (r.Start, r.End)).ToList();

    /// <summary>
    /// The pages of [start, end) written since they were protected (in memory or swap, and not the shared
    /// zero page), protected again in the same step, so that a later call reports only later writes.
    /// </summary>
    public List<(ulong Start, ulong End)> TakeWritten(ulong start, ulong end) =>
        Collect(_pagemap, start, end, UserFault.PM_SCAN_WP_MATCHING, UserFault.PAGE_IS_PFNZERO, UserFault.PAGE_IS_WRITTEN | UserFault.PAGE_IS_PFNZERO,
            UserFault.PAGE_IS_PRESENT | UserFault.PAGE_IS_SWAPPED).Select(r => (r.Start, r.End)).ToList();

    /// <summary>Every run of pages of [start, end) with the same state (<see cref="PageState"/>).</summary>
    public List<(ulong Start, ulong End, PageState State)> States(ulong start, ulong end) =>
        Collect(_pagemap, start, end, 0, 0, 0, 0).Select(r => (r.Start, r.End, new PageState(r.Categories))).ToList();

    /// <summary>What PAGEMAP_SCAN says of a page.</summary>
    public readonly record struct PageState(ulong Categories)
    {
        /// <summary>Written since it was protected, or not under tracking (a mapping made anew): its bytes may have changed.</summary>
        public bool MayHaveChanged => (Categories & UserFault.PAGE_IS_WRITTEN) != 0 || (Categories & UserFault.PAGE_IS_WPALLOWED) == 0;
        /// <summary>Bytes of its own, in memory or swap (not the shared zero page, not a never-touched page).</summary>
        public bool HasBytes => (Categories & (UserFault.PAGE_IS_PRESENT | UserFault.PAGE_IS_SWAPPED)) != 0 && (Categories & UserFault.PAGE_IS_PFNZERO) == 0;
    }

    /// <summary>Runs PAGEMAP_SCAN over [start, end) until done. Safe to call from several threads at once.</summary>
    private static List<UserFault.PageRegion> Collect(SafeFileDescriptor pagemap, ulong start, ulong end, ulong flags, ulong inverted, ulong all, ulong any)
    {
        var regions = new UserFault.PageRegion[256];
        var result = new List<UserFault.PageRegion>();
        ulong at = start;
        while (at < end)
        {
            int n = UserFault.Scan(pagemap, at, end, flags, inverted, all, any, regions, out ulong walkEnd);
            if (n < 0) throw Errno.ToException(-n, "PAGEMAP_SCAN", 0);
            for (int i = 0; i < n; i++)
            {
                var r = regions[i];
                if (result.Count > 0 && result[^1].End == r.Start && (result[^1].Categories == r.Categories || any != 0 || all != 0))
                    result[^1] = result[^1] with { End = r.End };
                else result.Add(r);
            }
            if (walkEnd <= at || n < regions.Length) break;
            at = walkEnd;
        }
        return result;
    }

    /// <summary>Whether [start, end) holds pages of its own (copy-on-write copies, not the file's): smaps' "Anonymous" &gt; 0.</summary>
    public bool HasPrivatePages(ulong start, ulong end)
    {
        Span<UserFault.PageRegion> one = stackalloc UserFault.PageRegion[1];
        int n = UserFault.Scan(_pagemap, start, end, 0, UserFault.PAGE_IS_FILE, UserFault.PAGE_IS_FILE,
            UserFault.PAGE_IS_PRESENT | UserFault.PAGE_IS_SWAPPED, one, out _);
        return n > 0;
    }

    public void Dispose()
    {
        // In slices, so the process's own page faults never wait long for the address space's lock.
        foreach (var (start, end) in _registered)
        {
            for (ulong at = start; at < end; at += UnregisterChunk)
            {
                int e = UserFault.Unregister(_uffd, at, Math.Min(UnregisterChunk, end - at));
                if (e != 0 && e != Errno.ENOMEM) { _log.LogDebug("UFFDIO_UNREGISTER {Start:x}: {Errno}.", at, Errno.Name(e)); break; }
            }
        }
        _registered.Clear();
        _uffd.Dispose(); // whatever is still registered (a range that moved) is released with the descriptor
        _pagemap.Dispose();
    }
}
