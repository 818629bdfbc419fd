using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;
using PSLinuxTrace.Engine.Syscalls;

namespace PSLinuxTrace.Engine.Tracing;

/// <summary>
/// strace --seccomp-bpf for a launched program: at the launcher's execve entry stop, that call is turned
/// into seccomp(SECCOMP_SET_MODE_FILTER) with a filter that returns SECCOMP_RET_TRACE for the selected
/// calls (written below the stack's red zone), then the execve is redone under the filter. From then on
/// the kernel stops the tracee only for the calls the user asked for.
/// </summary>
internal static class SeccompInstaller
{
    /// <summary>
    /// Installs the filter in <paramref name="tid"/>, stopped at a syscall-entry stop of execve, and leaves it
    /// rewound to redo the execve. Returns 0, or the -errno the kernel answered (then nothing is installed).
    /// </summary>
    public static long Install(PtraceSession session, int tid, SyscallFilter filter, ISyscallArchitecture arch)
    {
        var saved = session.GetRegisters(tid);
        byte[] program = SeccompFilterProgram.Build(filter, arch);
        ulong filterAddress = (saved.rsp - 128 - (ulong)program.Length - 64) & ~15UL;
        ulong fprogAddress = filterAddress - 16;
        var fprog = new byte[16];
        BitConverter.TryWriteBytes(fprog.AsSpan(0, 2), (ushort)(program.Length / 8)); // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
        BitConverter.TryWriteBytes(fprog.AsSpan(8, 8), filterAddress);
        RemoteMemoryWriter.Write(tid, filterAddress, program);
        RemoteMemoryWriter.Write(tid, fprogAddress, fprog);
        var injector = new SyscallInjector(session, tid);
        // Without CAP_SYS_ADMIN the kernel takes a filter only under no_new_privs (seccomp(2)).
        bool needNoNewPrivs = EffectiveUid() != 0;
        if (needNoNewPrivs && injector.CallAtSyscallStop(tid, saved, true, arch.Number("prctl"), [LibC.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0]) != 0)
            throw new LinuxTraceException("The tracee could not set no_new_privs, which an unprivileged seccomp filter needs.");
        long r = injector.CallAtSyscallStop(tid, saved, !needNoNewPrivs, arch.Number("seccomp"), [LibC.SECCOMP_SET_MODE_FILTER, 0, fprogAddress]);
        // Redo the execve: back over the syscall instruction, with the call number in place.
        session.SetRegisters(tid, injector.Redo(saved));
        return r;
    }

    private static uint EffectiveUid()
    {
        try { return ProcFs.ReadStatus(Environment.ProcessId).EffectiveUid; }
        catch (LinuxTraceException) { return 1; }
    }
}
