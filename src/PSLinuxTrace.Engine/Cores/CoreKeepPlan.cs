using System.Buffers.Binary;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Memory;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>
/// What of a compressed core its temporary file leaves out: the big anonymous segments no thread's
/// stack is in (heaps, arenas, big allocations), which are most of a big core and nothing a
/// backtrace reads. Writing them would double the cost of decompressing (the page cache fills and
/// writes back); the file keeps holes there instead, and a read that does land in one (a signal
/// handler on an alternate stack walking back to the thread's own, say) is served by decompressing
/// again (<see cref="CompressedCoreContents"/>), so no read ever sees the holes' zeros.
/// Decided from the core's start: its ELF header, program headers and notes come before its memory.
/// </summary>
internal sealed class CoreKeepPlan
{
    /// <summary>Segments smaller than this are kept whatever they are: thread stacks (8 MiB by default), small mappings.</summary>
    public const ulong MinDroppedSize = 16 << 20;
    /// <summary>The most of the core's start held in memory to read its notes (they take ~5 KiB a thread).</summary>
    public const int MaxHeadSize = 64 << 20;

    private readonly (ulong Offset, ulong End)[] _dropped;

    private CoreKeepPlan((ulong, ulong)[] dropped) => _dropped = dropped;

    /// <summary>The core-file ranges left out, sorted.</summary>
    public IReadOnlyList<(ulong Offset, ulong End)> Dropped => _dropped;
    public ulong DroppedBytes => _dropped.Aggregate(0UL, (sum, d) => sum + (d.End - d.Offset));

    /// <summary>The plan for a core whose first bytes (through its notes) are <paramref name="head"/>; null to keep everything.</summary>
    public static CoreKeepPlan? From(byte[] head, string name)
    {
        try
        {
            using var core = CoreFile.FromBytes(head, name);
            var stacks = core.Threads.Select(t => t.Status.Registers.rsp).ToArray();
            var dropped = core.Elf.ProgramHeaders
                .Where(p => p.Type == ElfProgramHeader.PT_LOAD && p.FileSize >= MinDroppedSize && (p.Flags & ElfProgramHeader.PF_X) == 0)
                .Where(p => !core.Files.Any(f => f.Start < p.VirtualAddress + p.MemorySize && f.End > p.VirtualAddress))
                .Where(p => !stacks.Any(sp => sp >= p.VirtualAddress && sp - p.VirtualAddress < p.MemorySize))
                .Select(p => (p.Offset, p.Offset + p.FileSize)).OrderBy(d => d.Offset).ToArray();
            return dropped.Length == 0 ? null : new CoreKeepPlan(dropped);
        }
        catch (BadInputFormatException)
        {
            return null; // reading the whole file will say what is wrong with it
        }
    }

    /// <summary>The parts of [offset, offset + length) that the file keeps, as (start within the range, length).</summary>
    public IEnumerable<(int Start, int Length)> Kept(ulong offset, int length)
    {
        ulong at = offset, end = offset + (ulong)length;
        foreach (var (dOffset, dEnd) in _dropped)
        {
            if (dEnd <= at) continue;
            if (dOffset >= end) break;
            if (dOffset > at) yield return ((int)(at - offset), (int)(dOffset - at));
            at = Math.Max(at, dEnd);
            if (at >= end) yield break;
        }
        if (at < end) yield return ((int)(at - offset), (int)(end - at));
    }

    /// <summary>The dropped range holding <paramref name="offset"/>, or null.</summary>
    public (ulong Offset, ulong End)? DroppedAt(ulong offset)
    {
        foreach (var d in _dropped)
            if (offset >= d.Offset && offset < d.End) return d;
        return null;
    }

    /// <summary>
    /// How much of the core's start holds its ELF header, program headers and notes, from its first bytes;
    /// and how long the whole core says it is (its last segment's or section headers' end). Null when the
    /// first bytes do not hold the program headers.
    /// </summary>
    public static (ulong HeadLength, ulong Length)? Peek(ReadOnlySpan<byte> start)
    {
        if (start.Length < 64 || !ElfFile.HasElfMagic(start) || start[4] != 2 || start[5] != 1) return null;
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(start[32..]), shoff = BinaryPrimitives.ReadUInt64LittleEndian(start[40..]);
        int phentsize = BinaryPrimitives.ReadUInt16LittleEndian(start[54..]), phnum = BinaryPrimitives.ReadUInt16LittleEndian(start[56..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(start[60..]);
        if (phentsize != 56 || phnum == 0xffff || phoff > (ulong)start.Length || (ulong)phnum * 56 > (ulong)start.Length - phoff) return null;
        ulong head = phoff + (ulong)phnum * 56, end = shoff == 0 ? 0 : SaturatingAdd(shoff, (ulong)shnum * 64);
        for (int i = 0; i < phnum; i++)
        {
            var p = start[(int)(phoff + (ulong)i * 56)..];
            ulong segmentEnd = SaturatingAdd(BinaryPrimitives.ReadUInt64LittleEndian(p[8..]), BinaryPrimitives.ReadUInt64LittleEndian(p[32..]));
            end = Math.Max(end, segmentEnd);
            if (BinaryPrimitives.ReadUInt32LittleEndian(p) == ElfProgramHeader.PT_NOTE) head = Math.Max(head, segmentEnd);
        }
        return (head, end);
    }

    private static ulong SaturatingAdd(ulong a, ulong b) => a > ulong.MaxValue - b ? ulong.MaxValue : a + b;
}

/// <summary>A compressed core's bytes while it is read: the temporary file, and for what it left out, decompression again.</summary>
internal sealed class SplitCoreContents(IFileContents file, CoreKeepPlan plan, IFileContents again) : IFileContents
{
    public int Read(ulong offset, Span<byte> buffer)
    {
        if (plan.DroppedAt(offset) is { } d)
            return again.Read(offset, buffer[..(int)Math.Min((ulong)buffer.Length, d.End - offset)]);
        var kept = plan.Kept(offset, buffer.Length).First(); // starts at offset: it is not dropped
        return file.Read(offset, buffer[..kept.Length]);
    }
}
