using System.Security.Cryptography;
using System.Text;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Symbols;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>
/// A crash's signature: the signal and the crashing thread's top frames, each as its module's build-id,
/// the pc's address inside the module (pc minus the load bias: what addr2line -e takes, the same under
/// any ASLR base) and the function's name:
/// <c>SIGSEGV|&lt;build-id&gt;+0x1139 pslt_crash_here|&lt;build-id&gt;+0x14c0 main|...</c>.
/// The same crash of the same build groups together across hosts, restarts and pids; another crash site,
/// signal or build does not. As crash reporters do (Socorro's prefix list, ABRT's core_backtrace), the
/// frames of the machinery a program dies through are left out, so two assertions that fail in two places
/// differ where they failed, not in libc: see <see cref="DyingFrames"/> and <see cref="Build"/>.
/// </summary>
public static class CrashSignature
{
    /// <summary>
    /// Frames kept. Five tell apart two crashes in one helper reached from different callers (the top frame
    /// alone would not), while callers further out (an event loop, a thread pool, the depth of a recursion)
    /// would split one bug into several groups.
    /// </summary>
    public const int FrameCount = 5;

    /// <summary>How deep the dying machinery is looked for: abort's own chain is 4-6 frames, C++'s std::terminate adds 4.</summary>
    public const int DyingSearchDepth = 16;

    /// <summary>
    /// Functions a program dies through (glibc's abort, assert, fortify and heap checks, raise, and the C++
    /// runtime's terminate and throw). The top frames, while they are these or unnamed (at most
    /// <see cref="DyingSearchDepth"/>), are left out down to the last of these. Names without a symbol version (@GLIBC_2.2.5).
    /// </summary>
    public static readonly IReadOnlySet<string> DyingFrames = new HashSet<string>(StringComparer.Ordinal)
    {
        "abort", "__GI_abort", "raise", "__GI_raise", "gsignal", "pthread_kill", "__pthread_kill", "__GI___pthread_kill",
        "__pthread_kill_implementation", "__pthread_kill_internal",
        "__assert_fail", "__assert_fail_base", "__assert_perror_fail", "__GI___assert_fail",
        "__libc_message", "__libc_fatal", "__fortify_fail", "__chk_fail", "__stack_chk_fail", "malloc_printerr",
        "__cxa_throw", "__cxa_rethrow", "_ZSt9terminatev", "std::terminate()", "_ZN10__cxxabiv111__terminateEPFvvE",
        "__cxxabiv1::__terminate(void (*)())", "_ZN9__gnu_cxx27__verbose_terminate_handlerEv", "__gnu_cxx::__verbose_terminate_handler()",
    };

    /// <summary>The signal trampoline a handler returns through (glibc and musl name it so on x86_64): left out wherever it is.</summary>
    public const string SignalTrampoline = "__restore_rt";

    // Its code, as gdb recognizes it whatever its name (amd64-linux-tdep.c: mov $__NR_rt_sigreturn, %rax; syscall).
    private static ReadOnlySpan<byte> TrampolineCode => [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];

    /// <summary>
    /// The signals whose default action dumps core (signal(7), "Core"): only these crash a process. A gcore
    /// of a running process records the SIGSTOP that stopped it, which is no crash.
    /// </summary>
    public static readonly IReadOnlySet<string> CrashSignals = new HashSet<string>(StringComparer.Ordinal)
    {
        "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGSEGV", "SIGXCPU", "SIGXFSZ", "SIGSYS",
    };

    /// <summary>
    /// The signature of a crash by <paramref name="signal"/> in a thread with <paramref name="frames"/>, whose
    /// modules <paramref name="map"/> knows; null unless <see cref="CrashSignals"/> has the signal (gcore and
    /// snapshot cores: no crash to group by). Inlined frames are left out: they exist only where debug
    /// information was found, and the signature must not change with that.
    /// </summary>
    public static string? Build(string? signal, IReadOnlyList<StackFrame> frames, ModuleMap map)
    {
        if (signal is null || !CrashSignals.Contains(signal)) return null;
        var physical = frames.Where(f => !f.IsInlined && !IsTrampoline(f, map)).ToList();
        // The leading run of dying frames, unnamed ones among them (a static function of a libc without
        // its debug file), ends at its last named one; the first other named frame is where the program was.
        int firstKept = 0;
        for (int i = 0; i < Math.Min(physical.Count, DyingSearchDepth); i++)
        {
            string? name = BaseName(physical[i].Symbol);
            if (name is null) continue;
            if (!DyingFrames.Contains(name)) break;
            firstKept = i + 1;
        }
        var sb = new StringBuilder(signal);
        foreach (var f in physical.Skip(firstKept).Take(FrameCount))
            sb.Append('|').Append(Token(f, map));
        return sb.ToString();
    }

    /// <summary>A short form of a signature: its SHA-256's first 16 hex digits (for file names, dashboards, a bug's title).</summary>
    public static string? Hash(string? signature) =>
        signature is null ? null : Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(signature)), 0, 8).ToLowerInvariant();

    /// <summary><c>build-id+0xADDRESS name</c>; the module's file name stands in for a missing build-id, <c>??</c> for a missing name or module.</summary>
    private static string Token(StackFrame frame, ModuleMap map)
    {
        string name = BaseName(frame.Symbol) ?? "??";
        var module = ModuleOf(frame, map);
        if (module is null) return $"?? {name}";
        string id = module.BuildId ?? Path.GetFileName(ModuleLayout.StripDeleted(module.Path));
        return module.LoadBiasKnown ? $"{id}+0x{frame.InstructionPointer - module.LoadBias:x} {name}" : $"{id}+? {name}";
    }

    /// <summary>The frame's module: the one holding its pc, or (a call as a module's last instruction) the byte before.</summary>
    private static MappedModule? ModuleOf(StackFrame frame, ModuleMap map)
    {
        if (frame.ModulePath is null) return null;
        ulong pc = frame.InstructionPointer;
        return map.Modules.FirstOrDefault(m => m.Path == frame.ModulePath && (m.Contains(pc) || m.Contains(pc - 1)));
    }

    /// <summary>The trampoline by its code where memory has it (a pc-1 lookup may name it after the function before), else by its name.</summary>
    private static bool IsTrampoline(StackFrame frame, ModuleMap map)
    {
        Span<byte> code = stackalloc byte[TrampolineCode.Length];
        if (map.Memory.Read(frame.InstructionPointer, code) == code.Length) return code.SequenceEqual(TrampolineCode);
        return BaseName(frame.Symbol) == SignalTrampoline;
    }

    /// <summary>The symbol without its version (pthread_kill@@GLIBC_2.34 is pthread_kill).</summary>
    private static string? BaseName(string? symbol) => symbol is null ? null : symbol.IndexOf('@') is var at and > 0 ? symbol[..at] : symbol;
}
