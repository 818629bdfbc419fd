using System.Buffers.Binary;

namespace PSLinuxTrace.Engine.Unwind;

/// <summary>The target's memory as the unwinder sees it: a core file, or a live process.</summary>
public interface IMemoryReader
{
    /// <summary>Fills <paramref name="buffer"/> from <paramref name="address"/>; false when any byte is unavailable.</summary>
    bool TryRead(ulong address, Span<byte> buffer);
}

public static class MemoryReaderExtensions
{
    public static bool TryReadU64(this IMemoryReader memory, ulong address, out ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        if (!memory.TryRead(address, b))
        {
            value = 0;
            return false;
        }
        value = BinaryPrimitives.ReadUInt64LittleEndian(b);
        return true;
    }
}
