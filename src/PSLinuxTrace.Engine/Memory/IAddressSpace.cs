using System.Buffers.Binary;

namespace PSLinuxTrace.Engine.Memory;

/// <summary>
/// A process's virtual memory as every reader of it sees it (the ELF image reader, the unwinder, the
/// symbolizer): a live process (<see cref="MemoryFile"/>, <see cref="RemoteMemory"/>) or a core
/// (<see cref="CoreAddressSpace"/>). One shape, so the same code reads cores, snapshots and live processes.
/// </summary>
public interface IAddressSpace
{
    /// <summary>
    /// Reads up to <c>buffer.Length</c> bytes at <paramref name="address"/>; returns how many contiguous
    /// bytes from <paramref name="address"/> on were available (short at the first hole, 0 when none).
    /// A live process that is gone throws <see cref="ProcessNotFoundException"/>.
    /// </summary>
    int Read(ulong address, Span<byte> buffer);
}

/// <summary>Exact reads, integers and C strings on any <see cref="IAddressSpace"/>.</summary>
public static class AddressSpaceExtensions
{
    /// <summary>Fills <paramref name="buffer"/> from <paramref name="address"/>; false when any byte is unavailable.</summary>
    public static bool TryRead(this IAddressSpace memory, ulong address, Span<byte> buffer) =>
        buffer.IsEmpty || memory.Read(address, buffer) == buffer.Length;

    public static bool TryReadU64(this IAddressSpace memory, ulong address, out ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        bool ok = memory.TryRead(address, b);
        value = ok ? BinaryPrimitives.ReadUInt64LittleEndian(b) : 0;
        return ok;
    }

    public static bool TryReadU32(this IAddressSpace memory, ulong address, out uint value)
    {
        Span<byte> b = stackalloc byte[4];
        bool ok = memory.TryRead(address, b);
        value = ok ? BinaryPrimitives.ReadUInt32LittleEndian(b) : 0;
        return ok;
    }

    /// <summary>
    /// <paramref name="length"/> bytes at <paramref name="address"/> as a new array, or null when not all
    /// are readable (a length from untrusted bytes is the caller's to bound).
    /// </summary>
    public static byte[]? TryReadArray(this IAddressSpace memory, ulong address, int length)
    {
        var bytes = new byte[length];
        return memory.TryRead(address, bytes) ? bytes : null;
    }

    /// <summary>
    /// A NUL-terminated string of at most <paramref name="maxBytes"/> bytes, as raw bytes (empty when
    /// nothing is readable there); <paramref name="truncated"/> when no NUL came within the limit.
    /// </summary>
    public static byte[] ReadCString(this IAddressSpace memory, ulong address, int maxBytes, out bool truncated)
    {
        var result = new List<byte>(64);
        Span<byte> chunk = stackalloc byte[256];
        truncated = false;
        while (result.Count < maxBytes)
        {
            // Never cross a page boundary in one read, so a string at the end of a mapping still reads.
            ulong at = address + (ulong)result.Count;
            int toPageEnd = 4096 - (int)(at & 4095);
            int want = Math.Min(Math.Min(chunk.Length, toPageEnd), maxBytes - result.Count);
            int n = memory.Read(at, chunk[..want]);
            if (n == 0) return [.. result];
            int nul = chunk[..n].IndexOf((byte)0);
            if (nul >= 0) { result.AddRange(chunk[..nul].ToArray()); return [.. result]; }
            result.AddRange(chunk[..n].ToArray());
        }
        truncated = true;
        return [.. result];
    }
}
