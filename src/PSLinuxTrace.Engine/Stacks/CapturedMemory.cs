using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Wire;

namespace PSLinuxTrace.Engine.Stacks;

/// <summary>
/// A process's address space as the unwinder sees it after a capture: the stacks as they were at the
/// pause (copied then), everything else (text, data, the vDSO) from the live process, which is running
/// again by now. Without a live process (it exited after the pause) only the copies are there.
/// </summary>
internal sealed class CapturedMemory(IReadOnlyList<CapturedThread> threads, IAddressSpace? live) : IAddressSpace
{
    public int Read(ulong address, Span<byte> buffer)
    {
        foreach (var t in threads)
        {
            ulong end = t.StackStart + (ulong)t.Stack.Length;
            if (address < t.StackStart || address >= end) continue;
            int n = (int)Math.Min((ulong)buffer.Length, end - address);
            t.Stack.AsSpan((int)(address - t.StackStart), n).CopyTo(buffer);
            return n;
        }
        if (live is null) return 0;
        try { return live.Read(address, buffer); }
        catch (ProcessNotFoundException) { return 0; }
    }
}
