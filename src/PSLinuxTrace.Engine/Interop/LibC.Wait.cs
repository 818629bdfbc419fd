using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

// waitpid(2) and the W* macros of <sys/wait.h>. Tracers pass __WALL | __WNOTHREAD: __WNOTHREAD keeps
// a tracer thread from reaping children that other threads of this process (the .NET Process class)
// started, and keeps them from stealing our ptrace stops.
internal static partial class LibC
{
    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int waitpid(int pid, out int status, int options);

    internal const int WNOHANG = 1, WUNTRACED = 2, WEXITED = 4, WCONTINUED = 8,
        __WNOTHREAD = 0x20000000, __WALL = 0x40000000, __WCLONE = unchecked((int)0x80000000);

    internal static bool WIFEXITED(int s) => (s & 0x7f) == 0;
    internal static int WEXITSTATUS(int s) => (s >> 8) & 0xff;
    internal static bool WIFSIGNALED(int s) => ((sbyte)((s & 0x7f) + 1) >> 1) > 0;
    internal static int WTERMSIG(int s) => s & 0x7f;
    internal static bool WCOREDUMP(int s) => (s & 0x80) != 0;
    internal static bool WIFSTOPPED(int s) => (s & 0xff) == 0x7f;
    internal static int WSTOPSIG(int s) => (s >> 8) & 0xff;
    /// <summary>The PTRACE_EVENT_* of a ptrace event stop (status &gt;&gt; 16).</summary>
    internal static int PtraceEvent(int s) => (s >> 16) & 0xffff;
}
