namespace PSLinuxTrace.Engine;

/// <summary>Linux signal names and numbers (x86_64).</summary>
public static class Signals
{
    private static readonly string[] Names =
    {
        "0", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV",
        "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU",
        "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
    };

    /// <summary>"SIGSEGV" for 11; "SIGRTMIN+3" for 37; "SIG99" beyond.</summary>
    public static string Name(int signal) => signal switch
    {
        > 0 and < 32 => Names[signal],
        >= 32 and <= 64 => signal == 34 ? "SIGRTMIN" : signal == 64 ? "SIGRTMAX" : $"SIGRTMIN+{signal - 34}",
        _ => $"SIG{signal}",
    };

    /// <summary>The number for "SIGTERM", "TERM" or "15"; -1 when unknown.</summary>
    public static int FromName(string name)
    {
        if (int.TryParse(name, out int n)) return n;
        string s = name.StartsWith("SIG", StringComparison.OrdinalIgnoreCase) ? name : "SIG" + name;
        for (int i = 1; i < Names.Length; i++)
            if (string.Equals(Names[i], s, StringComparison.OrdinalIgnoreCase)) return i;
        return -1;
    }

    /// <summary>si_code as strace names it: SI_USER, SI_TKILL, SI_KERNEL, CLD_EXITED, SEGV_MAPERR...</summary>
    public static string CodeName(int signal, int code) => code switch
    {
        0 => "SI_USER", 0x80 => "SI_KERNEL", -1 => "SI_QUEUE", -2 => "SI_TIMER", -3 => "SI_MESGQ", -4 => "SI_ASYNCIO", -5 => "SI_SIGIO", -6 => "SI_TKILL",
        _ when signal == 17 => code switch { 1 => "CLD_EXITED", 2 => "CLD_KILLED", 3 => "CLD_DUMPED", 4 => "CLD_TRAPPED", 5 => "CLD_STOPPED", 6 => "CLD_CONTINUED", _ => code.ToString() },
        _ when signal == 11 => code switch { 1 => "SEGV_MAPERR", 2 => "SEGV_ACCERR", _ => code.ToString() },
        _ => code.ToString(),
    };
}
