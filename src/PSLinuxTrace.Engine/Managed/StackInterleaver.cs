using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Symbols;
using PSLinuxTrace.Engine.Unwind;

namespace PSLinuxTrace.Engine.Managed;

/// <summary>
/// One frame list per thread from two stack walks: ours (native code, CFI or frame pointers) and the .NET
/// runtime's (managed methods and transition markers). Our frames in managed code are replaced by the
/// runtime's, which name them; where our walk stopped inside managed code, it resumes from the registers of
/// the runtime's next managed frame, so native code called further down still shows. Both walks are ordered
/// by stack pointer (the stack grows down), which is how they are merged.
/// </summary>
internal static class StackInterleaver
{
    private const int MaxResumes = 32;

    public static StackFrame[] Backtrace(Symbolizer symbolizer, ModuleMap map, X64Registers registers, int tid, int maxFrames,
        IAddressSpace? stack, IManagedFrameSource? managed)
    {
        var regs = registers.ToUserRegs();
        if (managed is null) return symbolizer.Backtrace(map, regs, maxFrames, stack);
        var clr = managed.Frames(tid, registers.Rsp);
        if (clr.Count == 0) return symbolizer.Backtrace(map, regs, maxFrames, stack);
        var unwound = symbolizer.Unwind(map, regs, maxFrames, stack);
        Resume(symbolizer, map, unwound, clr, maxFrames, stack);
        var native = symbolizer.Symbolize(map, unwound).Where((f, k) => !InManagedCode(managed, clr, f, k)).ToList();
        return Merge(native, clr, maxFrames);
    }

    /// <summary>Our frame at a managed method's code: the runtime names it (a return address is looked up at the call).</summary>
    private static bool InManagedCode(IManagedFrameSource managed, IReadOnlyList<ManagedFrame> clr, StackFrame f, int index) =>
        clr.Any(m => m.InstructionPointer == f.InstructionPointer && m.Kind == StackFrameKind.Managed)
        || managed.IsManagedCode(index == 0 ? f.InstructionPointer : f.InstructionPointer - 1);

    /// <summary>
    /// Continues our walk below managed frames it did not get past: from each managed frame deeper than our
    /// last frame, in turn, our unwinder takes one frame-pointer step (JIT code keeps rbp frames; it has no
    /// CFI) and goes on from there with CFI in native code.
    /// </summary>
    private static void Resume(Symbolizer symbolizer, ModuleMap map, List<UnwoundFrame> unwound, IReadOnlyList<ManagedFrame> clr,
        int maxFrames, IAddressSpace? stack)
    {
        int resumes = 0;
        foreach (var m in clr)
        {
            if (unwound.Count >= maxFrames || resumes >= MaxResumes) break;
            ulong lastSp = unwound.Count > 0 ? unwound[^1].StackPointer : 0;
            if (m.Kind != StackFrameKind.Managed || m.StackPointer <= lastSp || m.Rbp is not { } rbp) continue;
            resumes++;
            var from = new UserRegsX64 { rip = m.InstructionPointer, rsp = m.StackPointer, rbp = rbp };
            var more = symbolizer.Unwind(map, from, maxFrames - unwound.Count + 1, stack);
            // The first is the managed frame itself; keep what lies deeper than our walk got.
            foreach (var f in more.Skip(1))
                if (f.StackPointer > (unwound.Count > 0 ? unwound[^1].StackPointer : 0)) unwound.Add(f);
        }
    }

    /// <summary>Both lists in stack order; a runtime marker stays just before the managed frame ClrMD lists after it.</summary>
    private static StackFrame[] Merge(List<StackFrame> native, IReadOnlyList<ManagedFrame> clr, int maxFrames)
    {
        var result = new List<StackFrame>(native.Count + clr.Count);
        int i = 0, j = 0;
        while ((i < native.Count || j < clr.Count) && result.Count < maxFrames)
        {
            bool takeNative = j >= clr.Count || (i < native.Count && native[i].StackPointer <= Key(clr, j));
            result.Add(takeNative ? native[i++] with { Index = result.Count } : ToFrame(clr[j++], result.Count));
        }
        return result.ToArray();
    }

    /// <summary>The stack pointer a runtime frame sorts by: the next managed method's, whose frame holds it.</summary>
    private static ulong Key(IReadOnlyList<ManagedFrame> clr, int j)
    {
        for (int k = j; k < clr.Count; k++)
            if (clr[k].Kind == StackFrameKind.Managed) return clr[k].StackPointer;
        return clr[j].StackPointer;
    }

    private static StackFrame ToFrame(ManagedFrame m, int index) =>
        new(index, m.InstructionPointer, m.StackPointer, m.Name, m.Offset, m.ModulePath, "ClrMD")
        {
            Kind = m.Kind, ILOffset = m.ILOffset, File = m.File, Line = m.Line, Column = m.Column,
        };
}
