using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

/// <summary>
/// struct user_regs_struct for x86_64 (arch/x86/include/asm/user_64.h): what PTRACE_GETREGS and
/// NT_PRSTATUS's pr_reg hold, 27 unsigned longs in this order.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct UserRegsX64
{
    public ulong r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi;
    public ulong orig_rax, rip, cs, eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs;

    public const int Size = 27 * 8;
}
