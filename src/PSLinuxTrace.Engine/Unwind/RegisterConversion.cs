using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Unwind;

/// <summary>
/// The kernel's register set (user_regs_struct, as ptrace and NT_PRSTATUS give it) to the model's
/// X64Registers and back: here, not in Model/, which depends on nothing of the engine.
/// </summary>
public static class RegisterConversion
{
    public static X64Registers ToModel(this UserRegsX64 r) => new()
    {
        Rip = r.rip, Rsp = r.rsp, Rbp = r.rbp, Rax = r.rax, Rbx = r.rbx, Rcx = r.rcx, Rdx = r.rdx, Rsi = r.rsi, Rdi = r.rdi,
        R8 = r.r8, R9 = r.r9, R10 = r.r10, R11 = r.r11, R12 = r.r12, R13 = r.r13, R14 = r.r14, R15 = r.r15, OrigRax = r.orig_rax,
        Eflags = r.eflags, Cs = r.cs, Ss = r.ss, Ds = r.ds, Es = r.es, Fs = r.fs, Gs = r.gs, FsBase = r.fs_base, GsBase = r.gs_base,
    };

    public static UserRegsX64 ToUserRegs(this X64Registers x) => new()
    {
        rip = x.Rip, rsp = x.Rsp, rbp = x.Rbp, rax = x.Rax, rbx = x.Rbx, rcx = x.Rcx, rdx = x.Rdx, rsi = x.Rsi, rdi = x.Rdi,
        r8 = x.R8, r9 = x.R9, r10 = x.R10, r11 = x.R11, r12 = x.R12, r13 = x.R13, r14 = x.R14, r15 = x.R15, orig_rax = x.OrigRax,
        eflags = x.Eflags, cs = x.Cs, ss = x.Ss, ds = x.Ds, es = x.Es, fs = x.Fs, gs = x.Gs, fs_base = x.FsBase, gs_base = x.GsBase,
    };
}
