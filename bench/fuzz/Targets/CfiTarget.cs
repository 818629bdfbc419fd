using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Unwind;

namespace PSLinuxTrace.Fuzz;

/// <summary>
/// DWARF call frame information and the expression evaluator. Input: one flags byte (bit 0: the
/// rest is a .debug_frame, else an .eh_frame linked at <see cref="SectionAddress"/>), then the
/// section. Every FDE's rows are looked up, then the Unwinder walks a stack made of the input
/// itself, which runs the rules and their DWARF expressions against readable memory.
/// </summary>
internal static class CfiTarget
{
    public const ulong SectionAddress = 0x401000, StackAddress = 0x7ffe0000;
    private const int MaxFdes = 64;

    /// <summary>The input bytes readable at <see cref="StackAddress"/>: the unwinder's stack.</summary>
    private sealed class InputMemory(byte[] bytes) : IAddressSpace
    {
        public int Read(ulong address, Span<byte> buffer)
        {
            if (address < StackAddress || address - StackAddress >= (ulong)bytes.Length) return 0;
            var from = bytes.AsSpan((int)(address - StackAddress));
            int n = Math.Min(from.Length, buffer.Length);
            from[..n].CopyTo(buffer);
            return n;
        }
    }

    public static void Run(byte[] input)
    {
        if (input.Length < 1) return;
        bool isDebugFrame = (input[0] & 1) != 0;
        var cfi = CallFrameInfo.FromBytes(input[1..], SectionAddress, isDebugFrame, "fuzz.cfi");
        var memory = new InputMemory(input);
        var unwinder = new Unwinder(memory, _ => new UnwindModule(cfi, 0));
        foreach (ulong pc in cfi.FdeStarts().Take(MaxFdes).ToArray())
        {
            _ = cfi.Covers(pc);
            if (cfi.FindRow(pc) is { } row && row.CfaExpression is { } expression)
                DwarfExpression.Evaluate(expression, Registers(pc), memory, null);
            cfi.FindRow(pc + 3);
            unwinder.Unwind(Registers(pc + 1), 32);
        }
        // The evaluator on its own, over the input's tail: operations the CFI rules never emit.
        DwarfExpression.Evaluate(input.AsSpan(1, Math.Min(input.Length - 1, 256)), Registers(SectionAddress), memory, StackAddress);
    }

    private static ulong?[] Registers(ulong pc)
    {
        var regs = new ulong?[CfiRow.RegisterCount];
        for (int r = 0; r < regs.Length; r++) regs[r] = (ulong)r * 8;
        regs[Unwinder.Rsp] = StackAddress + 16;
        regs[Unwinder.Rbp] = StackAddress + 32;
        regs[Unwinder.ReturnAddress] = pc;
        return regs;
    }
}
