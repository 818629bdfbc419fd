using PSLinuxTrace.Engine.Memory;

namespace PSLinuxTrace.Engine.Unwind;

/// <summary>
/// A small DWARF expression evaluator: what CFI uses (DW_CFA_def_cfa_expression in PLT entries,
/// DW_CFA_expression in signal trampolines). Returns null for an operation it does not know or a
/// memory read that fails, so the unwinder stops cleanly instead of inventing a frame.
/// </summary>
internal static class DwarfExpression
{
    public static ulong? Evaluate(ReadOnlySpan<byte> expr, ulong?[] regs, IAddressSpace memory, ulong? initial)
    {
        var stack = new Stack<ulong>();
        if (initial is { } init) stack.Push(init);
        var c = new DwarfCursor(expr, 0);
        int steps = 0;
        try
        {
            while (!c.AtEnd)
            {
                if (++steps > 1000) return null;
                byte op = c.U8();
                switch (op)
                {
                    case >= 0x30 and <= 0x4f: stack.Push((ulong)(op - 0x30)); break;                  // DW_OP_lit0..31
                    case >= 0x50 and <= 0x6f:                                                         // DW_OP_reg0..31: not a value here
                        return null;
                    case >= 0x70 and <= 0x8f:                                                         // DW_OP_breg0..31
                    {
                        int r = op - 0x70;
                        long off = c.Sleb();
                        if (r >= regs.Length || regs[r] is not { } v) return null;
                        stack.Push(unchecked(v + (ulong)off));
                        break;
                    }
                    case 0x08: stack.Push(c.U8()); break;                          // const1u
                    case 0x09: stack.Push((ulong)(long)(sbyte)c.U8()); break;      // const1s
                    case 0x0a: stack.Push(c.U16()); break;                         // const2u
                    case 0x0b: stack.Push((ulong)(long)(short)c.U16()); break;     // const2s
                    case 0x0c: stack.Push(c.U32()); break;                         // const4u
                    case 0x0d: stack.Push((ulong)(long)(int)c.U32()); break;       // const4s
                    case 0x0e: stack.Push(c.U64()); break;                         // const8u
                    case 0x0f: stack.Push(c.U64()); break;                         // const8s
                    case 0x10: stack.Push(c.Uleb()); break;                        // constu
                    case 0x11: stack.Push((ulong)c.Sleb()); break;                 // consts
                    case 0x12: stack.Push(stack.Peek()); break;                    // dup
                    case 0x13: stack.Pop(); break;                                 // drop
                    case 0x14: { var a = stack.Pop(); var b = stack.Peek(); stack.Push(a); stack.Push(b); break; } // over
                    case 0x15: { int i = c.U8(); var arr = stack.ToArray(); if (i >= arr.Length) return null; stack.Push(arr[i]); break; } // pick
                    case 0x16: { var a = stack.Pop(); var b = stack.Pop(); stack.Push(a); stack.Push(b); break; } // swap
                    case 0x06:                                                     // deref
                    {
                        if (!memory.TryReadU64(stack.Pop(), out ulong v)) return null;
                        stack.Push(v);
                        break;
                    }
                    case 0x1a: { var b = stack.Pop(); var a = stack.Pop(); stack.Push(a & b); break; }
                    case 0x1c: { var b = stack.Pop(); var a = stack.Pop(); stack.Push(unchecked(a - b)); break; }
                    case 0x1e: { var b = stack.Pop(); var a = stack.Pop(); stack.Push(unchecked(a * b)); break; }
                    case 0x1f: stack.Push(unchecked((ulong)-(long)stack.Pop())); break;
                    case 0x20: stack.Push(~stack.Pop()); break;
                    case 0x21: { var b = stack.Pop(); var a = stack.Pop(); stack.Push(a | b); break; }
                    case 0x22: { var b = stack.Pop(); var a = stack.Pop(); stack.Push(unchecked(a + b)); break; }
                    case 0x23: stack.Push(unchecked(stack.Pop() + c.Uleb())); break; // plus_uconst
                    case 0x24: { var b = stack.Pop(); var a = stack.Pop(); stack.Push(b >= 64 ? 0 : a << (int)b); break; }
                    case 0x25: { var b = stack.Pop(); var a = stack.Pop(); stack.Push(b >= 64 ? 0 : a >> (int)b); break; }
                    case 0x26: { var b = stack.Pop(); var a = stack.Pop(); stack.Push((ulong)((long)a >> (int)Math.Min(b, 63))); break; }
                    case 0x27: { var b = stack.Pop(); var a = stack.Pop(); stack.Push(a ^ b); break; }
                    case 0x29: { var b = stack.Pop(); var a = stack.Pop(); stack.Push(a == b ? 1UL : 0); break; }
                    case 0x2a: { var b = stack.Pop(); var a = stack.Pop(); stack.Push((long)a >= (long)b ? 1UL : 0); break; }
                    case 0x2b: { var b = stack.Pop(); var a = stack.Pop(); stack.Push((long)a > (long)b ? 1UL : 0); break; }
                    case 0x2c: { var b = stack.Pop(); var a = stack.Pop(); stack.Push((long)a <= (long)b ? 1UL : 0); break; }
                    case 0x2d: { var b = stack.Pop(); var a = stack.Pop(); stack.Push((long)a < (long)b ? 1UL : 0); break; }
                    case 0x2e: { var b = stack.Pop(); var a = stack.Pop(); stack.Push(a != b ? 1UL : 0); break; }
                    case 0x2f: { short d = (short)c.U16(); c.Position += d; if (c.Position < 0 || c.Position > c.Length) return null; break; } // skip
                    case 0x28: { short d = (short)c.U16(); if (stack.Pop() != 0) { c.Position += d; if (c.Position < 0 || c.Position > c.Length) return null; } break; } // bra
                    case 0x96: break;                                              // nop
                    default: return null;
                }
            }
            return stack.Count > 0 ? stack.Pop() : null;
        }
        catch (InvalidOperationException)
        {
            return null; // stack underflow: a malformed expression
        }
        catch (BadInputFormatException)
        {
            return null;
        }
    }
}
