namespace PSLinuxTrace.Engine.Interop;

/// <summary>
/// Consumer side of a BPF_MAP_TYPE_RINGBUF map (kernel/bpf/ringbuf.c): the consumer position page
/// mapped read-write, the producer page and the data pages (mapped twice back to back by the kernel,
/// so a record that wraps is still contiguous) read-only, and an epoll fd that wakes when data arrives.
/// </summary>
public sealed unsafe class RingBufferReader : IDisposable
{
    private const uint BPF_RINGBUF_BUSY_BIT = 1u << 31, BPF_RINGBUF_DISCARD_BIT = 1u << 30, BPF_RINGBUF_HDR_SZ = 8;

    private readonly nint _consumer, _producer;
    private readonly nuint _page, _producerLength;
    private readonly byte* _data;
    private readonly ulong _mask;
    private readonly SafeFileDescriptor _epoll;
    private bool _disposed;

    public delegate void RecordHandler(ReadOnlySpan<byte> record);

    /// <param name="mapFd">a BPF_MAP_TYPE_RINGBUF map (the caller checks the type)</param>
    /// <param name="size">its max_entries: the data size in bytes, a power of two</param>
    public RingBufferReader(SafeFileDescriptor mapFd, uint size)
    {
        if (size == 0 || (size & (size - 1)) != 0) throw new ArgumentException($"A ring buffer's size is a power of two, not {size}.");
        _page = (nuint)LibC.sysconf(LibC._SC_PAGESIZE);
        _mask = size - 1;
        _consumer = LibC.mmap(0, _page, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_SHARED, mapFd.Fd, 0);
        if (_consumer == LibC.MAP_FAILED) throw Errno.ToException(Errno.Last, "mmap (ring buffer consumer page)");
        _producerLength = _page + 2 * (nuint)size;
        _producer = LibC.mmap(0, _producerLength, LibC.PROT_READ, LibC.MAP_SHARED, mapFd.Fd, (long)_page);
        if (_producer == LibC.MAP_FAILED)
        {
            int e = Errno.Last;
            LibC.munmap(_consumer, _page);
            throw Errno.ToException(e, "mmap (ring buffer data pages)");
        }
        _data = (byte*)_producer + _page;
        int ep = LibC.epoll_create1(LibC.EPOLL_CLOEXEC);
        if (ep < 0)
        {
            int e = Errno.Last;
            Unmap();
            throw Errno.ToException(e, "epoll_create1");
        }
        _epoll = new SafeFileDescriptor(ep);
        byte* ev = stackalloc byte[LibC.EpollEventMaxSize];
        new Span<byte>(ev, LibC.EpollEventMaxSize).Clear();
        *(uint*)ev = LibC.EPOLLIN;
        if (LibC.epoll_ctl(ep, LibC.EPOLL_CTL_ADD, mapFd.Fd, ev) < 0)
        {
            int e = Errno.Last;
            Dispose();
            throw Errno.ToException(e, "epoll_ctl");
        }
    }

    /// <summary>Blocks up to <paramref name="timeoutMs"/> for data; true when woken by the kernel.</summary>
    public bool Wait(int timeoutMs)
    {
        byte* evs = stackalloc byte[LibC.EpollEventMaxSize];
        int n = LibC.epoll_wait(_epoll.Fd, evs, 1, timeoutMs);
        if (n < 0 && Errno.Last != Errno.EINTR) throw Errno.ToException(Errno.Last, "epoll_wait");
        return n > 0;
    }

    /// <summary>Hands every committed record to <paramref name="handler"/>; returns how many.</summary>
    public int Consume(RecordHandler handler)
    {
        ulong* consPos = (ulong*)_consumer, prodPos = (ulong*)_producer;
        ulong cons = Volatile.Read(ref *consPos);
        int count = 0;
        while (true)
        {
            ulong prod = Volatile.Read(ref *prodPos);   // smp_load_acquire in the C consumer
            if (cons >= prod) return count;
            while (cons < prod)
            {
                uint* hdr = (uint*)(_data + (cons & _mask));
                uint len = Volatile.Read(ref *hdr);
                if ((len & BPF_RINGBUF_BUSY_BIT) != 0) return count;   // reserved, not yet committed
                uint size = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
                if ((len & BPF_RINGBUF_DISCARD_BIT) == 0)
                {
                    handler(new ReadOnlySpan<byte>((byte*)hdr + BPF_RINGBUF_HDR_SZ, (int)size));
                    count++;
                }
                cons += (size + BPF_RINGBUF_HDR_SZ + 7) & ~7ul;
                Volatile.Write(ref *consPos, cons);            // smp_store_release
            }
        }
    }

    private void Unmap()
    {
        LibC.munmap(_producer, _producerLength);
        LibC.munmap(_consumer, _page);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _epoll?.Dispose();
        Unmap();
    }
}
