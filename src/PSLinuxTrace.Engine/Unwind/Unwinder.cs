using PSLinuxTrace.Engine.Memory;

namespace PSLinuxTrace.Engine.Unwind;

/// <summary>How a frame's caller was found.</summary>
public enum UnwindMethod
{
    /// <summary>The first frame: the thread's registers.</summary>
    Context,
    /// <summary>DWARF call frame information (.eh_frame / .debug_frame).</summary>
    CallFrameInfo,
    /// <summary>The frame-pointer chain (rbp), where no CFI covers the pc.</summary>
    FramePointer,
}

/// <summary>A module as the unwinder needs it: its CFI and where it is loaded.</summary>
public sealed record UnwindModule(CallFrameInfo? Cfi, ulong LoadBias);

/// <summary>One frame found by the unwinder.</summary>
public readonly record struct UnwoundFrame(ulong InstructionPointer, ulong StackPointer, UnwindMethod Method, bool IsSignalFrame);

/// <summary>
/// Walks a thread's stack from its registers: CFI where the pc's module has it, the rbp chain
/// otherwise; stops cleanly at the outermost frame (return address undefined or 0), at a frame it
/// cannot read, or when the stack stops growing.
/// </summary>
public sealed class Unwinder
{
    // DWARF register numbers for x86_64 (System V psABI, figure 3.36).
    public const int Rax = 0, Rdx = 1, Rcx = 2, Rbx = 3, Rsi = 4, Rdi = 5, Rbp = 6, Rsp = 7, R8 = 8, R15 = 15, ReturnAddress = 16;

    private readonly IAddressSpace _memory;
    private readonly Func<ulong, UnwindModule?> _moduleAt;

    public Unwinder(IAddressSpace memory, Func<ulong, UnwindModule?> moduleAt)
    {
        _memory = memory;
        _moduleAt = moduleAt;
    }

    /// <summary>Registers in DWARF order (0-15, then rip as 16) from a user_regs_struct.</summary>
    public static ulong?[] FromUserRegs(Interop.UserRegsX64 r) => new ulong?[]
    {
        r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip,
    };

    public List<UnwoundFrame> Unwind(ulong?[] registers, int maxFrames = 256)
    {
        var frames = new List<UnwoundFrame>();
        var regs = (ulong?[])registers.Clone();
        if (regs[ReturnAddress] is not { } pc0 || regs[Rsp] is not { } sp0) return frames;
        frames.Add(new UnwoundFrame(pc0, sp0, UnwindMethod.Context, false));
        bool previousWasSignal = false;
        while (frames.Count < maxFrames)
        {
            ulong pc = regs[ReturnAddress]!.Value;
            ulong sp = regs[Rsp] ?? 0;
            // A return address points after the call; look up the call itself (not after a signal frame,
            // whose saved pc is the interrupted instruction).
            ulong lookup = frames.Count == 1 || previousWasSignal ? pc : pc - 1;
            var next = StepCfi(regs, lookup, out bool isSignal, out bool cfiSaysOutermost);
            UnwindMethod method = UnwindMethod.CallFrameInfo;
            if (cfiSaysOutermost) break;
            if (next is null)
            {
                next = StepFramePointer(regs);
                method = UnwindMethod.FramePointer;
                isSignal = false;
            }
            if (next is null || next[ReturnAddress] is not { } ra || ra == 0) break;
            ulong newSp = next[Rsp] ?? 0;
            // The stack grows down: a caller's frame is above its callee's. Equal is allowed once for
            // signal frames; anything else is a loop.
            if (newSp < sp || (newSp == sp && !isSignal && ra == pc)) break;
            frames.Add(new UnwoundFrame(ra, newSp, method, isSignal));
            previousWasSignal = isSignal;
            regs = next;
        }
        return frames;
    }

    private ulong?[]? StepCfi(ulong?[] regs, ulong lookupPc, out bool isSignal, out bool outermost)
    {
        isSignal = false;
        outermost = false;
        var module = _moduleAt(lookupPc);
        if (module?.Cfi is null) return null;
        CfiRow? row;
        try
        {
            row = module.Cfi.FindRow(unchecked(lookupPc - module.LoadBias));
        }
        catch (BadInputFormatException)
        {
            return null;
        }
        if (row is null) return null;
        isSignal = row.IsSignalFrame;
        ulong cfa;
        if (row.CfaExpression is not null)
        {
            if (DwarfExpression.Evaluate(row.CfaExpression, regs, _memory, null) is not { } v) return null;
            cfa = v;
        }
        else
        {
            if (row.CfaRegister < 0 || row.CfaRegister >= regs.Length || regs[row.CfaRegister] is not { } baseValue) return null;
            cfa = unchecked(baseValue + (ulong)row.CfaOffset);
        }
        var next = new ulong?[regs.Length];
        for (int r = 0; r < regs.Length; r++)
        {
            var rule = row.Rules[r];
            switch (rule.Kind)
            {
                case RuleKind.Unspecified:
                    // Callee-saved registers keep their value; the rest are unknown in the caller, but
                    // keeping them is harmless for unwinding (gdb does the same).
                    next[r] = regs[r];
                    break;
                case RuleKind.SameValue: next[r] = regs[r]; break;
                case RuleKind.Undefined: next[r] = null; break;
                case RuleKind.Offset:
                    next[r] = _memory.TryReadU64(unchecked(cfa + (ulong)rule.Offset), out ulong saved) ? saved : null;
                    break;
                case RuleKind.ValOffset: next[r] = unchecked(cfa + (ulong)rule.Offset); break;
                case RuleKind.Register: next[r] = rule.Register < regs.Length ? regs[rule.Register] : null; break;
                case RuleKind.Expression:
                {
                    var addr = DwarfExpression.Evaluate(rule.Expression!, regs, _memory, cfa);
                    next[r] = addr is { } a && _memory.TryReadU64(a, out ulong v) ? v : null;
                    break;
                }
                case RuleKind.ValExpression: next[r] = DwarfExpression.Evaluate(rule.Expression!, regs, _memory, cfa); break;
            }
        }
        int raReg = row.ReturnAddressRegister;
        if (raReg != ReturnAddress && raReg < regs.Length) next[ReturnAddress] = next[raReg];
        if (row.Rules[Math.Min(raReg, CfiRow.RegisterCount - 1)].Kind == RuleKind.Undefined)
        {
            // The ABI's mark of the outermost frame (_start, clone, thread start).
            outermost = true;
            return null;
        }
        if (row.Rules[Rsp].Kind == RuleKind.Unspecified) next[Rsp] = cfa;
        return next;
    }

    private ulong?[]? StepFramePointer(ulong?[] regs)
    {
        if (regs[Rbp] is not { } rbp || rbp == 0 || (rbp & 7) != 0) return null;
        if (!_memory.TryReadU64(rbp, out ulong savedRbp) || !_memory.TryReadU64(rbp + 8, out ulong ra)) return null;
        var next = (ulong?[])regs.Clone();
        next[Rbp] = savedRbp;
        next[Rsp] = rbp + 16;
        next[ReturnAddress] = ra;
        return next;
    }
}
