using PSLinuxTrace.Engine.Syscalls;

namespace PSLinuxTrace.Engine.Tracing.Bpf;

/// <summary>A file as the kernel names it: its inode and its device (the kernel's dev_t encoding).</summary>
internal readonly record struct FileIdentity(ulong Inode, uint Device)
{
    /// <summary>Whether stat(2) of <paramref name="path"/> (following /proc's fd links) gives this file.</summary>
    public bool IsAt(string path) =>
        Interop.LibC.TryIdentity(path, out ulong dev, out ulong ino) && ino == Inode && dev == Interop.LibC.UserDevice(Device);
}

/// <summary>What a copy in a record holds: bytes, a string, or an fd's identity.</summary>
internal enum CopyKind : byte { Memory = 1, String = 2, Fd = 3 }

/// <summary>
/// One copy the kernel program made (struct copy in syscalls.bpf.c): [Address, Address + Data.Length)
/// of the tracee for memory and strings; for an fd, Address is the fd number (AT_FDCWD for the cwd) and
/// Identity the inode it referred to then (inode 0: no such fd).
/// </summary>
internal sealed record Copy(ulong Address, byte Argument, CopyKind Kind, byte Flags, byte[] Data, FileIdentity Identity = default)
{
    public const byte FlagFault = 1, FlagCut = 2, FlagAtExit = 4;

    /// <summary>The read stopped at a page it could not read (absent, or a bad address).</summary>
    public bool Faulted => (Flags & FlagFault) != 0;

    /// <summary>A string longer than its limit, or a copy the record's copy area could not hold whole.</summary>
    public bool Cut => (Flags & FlagCut) != 0;
}

/// <summary>
/// The tracee as the eBPF engine saw it at one call: the copies of its memory taken at entry and at
/// exit, and the identities of its fds. Reads that no true copy answers throw
/// <see cref="TraceeMemoryUnavailableException"/> (the decoder shows "&lt;unavailable&gt;"), except
/// when the call itself failed with EFAULT: then the kernel could not read the address either, and
/// it shows as an unreadable pointer, as the ptrace engine shows it.
/// </summary>
internal sealed class CopiedTracee(int tid, IReadOnlyList<Copy> copies, bool badAddress, FdPathResolver fds) : ITraceeState
{
    public int Tid { get; } = tid;

    public int Read(ulong address, Span<byte> buffer)
    {
        Copy? c = Covering(address, buffer.Length);
        if (c is null || (c.Faulted && c.Data.Length == 0 && !badAddress)) throw new TraceeMemoryUnavailableException(address);
        int at = (int)(address - c.Address);
        int n = Math.Max(0, Math.Min(buffer.Length, c.Data.Length - at));
        if (n < buffer.Length && (c.Faulted || c.Cut) && !badAddress) throw new TraceeMemoryUnavailableException(address + (ulong)n);
        c.Data.AsSpan(at, n).CopyTo(buffer);
        return n;
    }

    public byte[] ReadCString(ulong address, int maxBytes, out bool truncated)
    {
        truncated = false;
        Copy? c = null;
        foreach (Copy k in copies)
            if (k.Kind == CopyKind.String && k.Address == address && (c is null || (c.Faulted && !k.Faulted))) c = k;
        if (c is null) throw new TraceeMemoryUnavailableException(address);
        if (c.Faulted)
        {
            if (badAddress) return [];   // Read then says unreadable: shown as the address
            throw new TraceeMemoryUnavailableException(address);
        }
        ReadOnlySpan<byte> s = c.Data;
        int nul = s.IndexOf((byte)0);
        if (nul >= 0) s = s[..nul];
        else if (!c.Cut || s.Length < maxBytes) throw new TraceeMemoryUnavailableException(address);   // cut by a full record, not by the limit
        if (s.Length > maxBytes) { s = s[..maxBytes]; truncated = true; }
        else if (nul < 0) truncated = true;
        return s.ToArray();
    }

    public string? FdPath(long fd) => Resolve(fd);

    public string? WorkingDirectory() => Resolve(FdPathResolver.AtFdCwd);

    private string? Resolve(long fd)
    {
        foreach (Copy k in copies)
            if (k.Kind == CopyKind.Fd && (long)k.Address == fd)
                return k.Identity.Inode == 0 ? null : fds.Resolve(Tid, fd, k.Identity);
        return null;   // not copied: the number alone, never a path that may belong to another file
    }

    /// <summary>The memory or string copy that holds <paramref name="address"/>, the one covering most of the request first.</summary>
    private Copy? Covering(ulong address, int length)
    {
        Copy? best = null;
        long bestCover = -1;
        foreach (Copy k in copies)
        {
            if (k.Kind == CopyKind.Fd || address < k.Address) continue;
            ulong end = k.Address + (ulong)Math.Max(k.Data.Length, 1);
            if (address >= end) continue;
            long cover = Math.Min(length, (long)(k.Address + (ulong)k.Data.Length - address));
            if (!k.Faulted) cover += 1L << 40;   // a copy that read whole beats one that faulted
            if (cover > bestCover) { best = k; bestCover = cover; }
        }
        return best;
    }
}
