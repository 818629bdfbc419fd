using System.Globalization;

namespace PSLinuxTrace.Engine.Access;

/// <summary>
/// Why the kernel refused us access to a process (EPERM/EACCES from ptrace, a /proc/PID file,
/// /proc/PID/mem or process_vm_readv), found by replaying the kernel's checks in their order
/// against what /proc shows: kernel/ptrace.c __ptrace_may_access (same thread group, uids), then security/commoncap.c cap_ptrace_access_check (user namespace, capabilities) and
/// security/yama (kernel.yama.ptrace_scope, attach requests only). The first check that fails is
/// the reason; every cmdlet and engine part reports permission problems about a pid through here.
/// It only reads world-readable files (never through Procfs/ProcFs, whose errors end here: this folder depends on nothing of the engine but its exceptions, so that the one errno check in Interop can use it).
/// </summary>
public static class AccessDiagnosis
{
    private const int CapSysPtrace = 19;
    // The initial user namespace's inode number is fixed: PROC_USER_INIT_INO (include/linux/proc_ns.h).
    private const string InitialUserNamespace = "user:[4026531837]";

    private static readonly string[] CapabilityNames =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
        "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ];

    /// <summary>"CAP_SYS_RESOURCE" for 24 (include/uapi/linux/capability.h); "CAP_N" for a number this table lacks.</summary>
    public static string CapabilityName(int bit) => bit >= 0 && bit < CapabilityNames.Length ? CapabilityNames[bit] : $"CAP_{bit}";

    /// <summary>The capability names of a capability bit mask, lowest bit first.</summary>
    public static IEnumerable<string> CapabilityNamesOf(ulong mask)
    {
        for (int bit = 0; bit < 64; bit++)
            if ((mask & (1UL << bit)) != 0) yield return CapabilityName(bit);
    }

    /// <summary>
    /// The exception for <paramref name="errno"/> (EPERM or EACCES) from <paramref name="operation"/>
    /// ("ptrace(PTRACE_SEIZE)", "reading /proc/1/maps", "process_vm_readv"...) on <paramref name="pid"/>:
    /// its message names the check that refused us, MissingCapability the capability that would have
    /// passed it (null when none would), RecommendedAction what to do instead.
    /// </summary>
    public static TargetPermissionDeniedException Explain(int pid, string operation, int errno)
    {
        var (reason, missing, action) = Diagnose(pid, operation);
        string comm = ReadFile($"/proc/{pid}/comm")?.TrimEnd('\n') is { Length: > 0 } c ? $" ({c})" : "";
        return new TargetPermissionDeniedException($"Permission denied: {operation} on process {pid}{comm}: {reason}", missing,
            recommendedAction: action, errno: errno);
    }

    private readonly record struct Finding(string Reason, string? MissingCapability, string Action);

    private static Finding Diagnose(int pid, string operation)
    {
        // Attach-mode requests (ptrace itself, /proc/PID/mem, process_vm_readv) use the real
        // credentials and Yama's rules; reads of other /proc files use the fs credentials and no Yama.
        bool attach = !operation.Contains("/proc/", StringComparison.Ordinal) || operation.Contains("/mem", StringComparison.Ordinal);
        // The user's pwsh, also when this runs in the tracer process on its behalf.
        int self = UserProcess.Id;
        var target = Status(pid.ToString(CultureInfo.InvariantCulture));
        var us = Status("self");
        if (operation.Contains("ptrace", StringComparison.Ordinal) && (pid == self || Field(target, "Tgid") == self.ToString(CultureInfo.InvariantCulture)))
            return new("a process cannot trace itself: this is the PowerShell session's own process, and tracing its system calls would stop the very threads that read the events.", null,
                $"Trace it from another PowerShell session (for example `pwsh -c 'Start-SyscallTrace -Id {pid}'` in a second terminal).");
        if (target is null || us is null)
            return new("the kernel refused it, and /proc/PID/status could not be read to tell why.", null, "Check that the process still exists and that /proc is mounted.");

        ulong ourEffective = Caps(us, "CapEff"), ourPermitted = Caps(us, "CapPrm");
        bool havePtrace = (ourEffective & (1UL << CapSysPtrace)) != 0;
        bool root = Ids(us, "Uid") is [_, 0, ..];
        if (!havePtrace && Ids(target, "Uid") is { Length: >= 3 } tu && Ids(us, "Uid") is { Length: >= 1 } ou && !(tu[0] == ou[0] && tu[1] == ou[0] && tu[2] == ou[0]))
            return new($"it runs as uid {tu[1]} and this process as uid {ou[0]}, without CAP_SYS_PTRACE, which a process needs to look into another user's processes.",
                "CAP_SYS_PTRACE", root ? "This root session has lost CAP_SYS_PTRACE: run the command from a process that holds it." : "Run the command as root (sudo), or as the same user as the target.");

        string? theirNamespace = LinkTarget($"/proc/{pid}/ns/user"), ourNamespace = LinkTarget("/proc/self/ns/user");
        if (theirNamespace is not null && ourNamespace is not null && theirNamespace != ourNamespace && ourNamespace != InitialUserNamespace)
            return new($"it is in another user namespace ({theirNamespace}) than this process ({ourNamespace}), and capabilities count only in a process's own user namespace and the namespaces it created.",
                null, "Run the command from the target's user namespace or from one above it (for example from the host, outside the container).");

        // The target's permitted set against ours: effective for /proc reads (fs credentials), permitted for attach.
        ulong extra = Caps(target, "CapPrm") & ~(attach ? ourPermitted : ourEffective);
        if (extra != 0)
        {
            string names = string.Join(", ", CapabilityNamesOf(extra));
            bool cannotGain = (extra & ~Caps(us, "CapBnd")) != 0;
            string them = names.Contains(',') ? "them" : "it";
            return new($"it holds {names}, which this process lacks, and the kernel refuses a process access to another that holds capabilities it does not have.",
                names, cannotGain
                    ? $"This session's capability bounding set lacks {names}, so nothing started from it can gain {them}: run the command from a process that holds {them} (outside this container or sandbox)."
                    : $"Run the command from a process whose permitted capabilities include {names}.");
        }

        if (attach && int.TryParse(ReadFile("/proc/sys/kernel/yama/ptrace_scope")?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int scope))
        {
            if (scope >= 3)
                return new("kernel.yama.ptrace_scope is 3 (no attach): no process may attach to another, whatever its privileges, until the machine reboots.", null,
                    "Nothing can change it before a reboot; boot with kernel.yama.ptrace_scope at 2 or lower.");
            if (scope == 2 && !havePtrace)
                return new("kernel.yama.ptrace_scope is 2 (admin-only attach): only a process with CAP_SYS_PTRACE may attach to another.", "CAP_SYS_PTRACE",
                    root ? "Run the command from a process that holds CAP_SYS_PTRACE." : "Run the command as root (sudo).");
            if (scope == 1 && !havePtrace && !IsDescendant(pid, self))
                return new("kernel.yama.ptrace_scope is 1 (restricted): a process may attach only to its own descendants (or to one that named it with prctl(PR_SET_PTRACER)) unless it has CAP_SYS_PTRACE.",
                    "CAP_SYS_PTRACE", root ? "Run the command from a process that holds CAP_SYS_PTRACE." : "Run the command as root (sudo), or start the program under the trace (-FilePath).");
        }
        return new("the uid, capability, user-namespace and kernel.yama.ptrace_scope checks all pass, so a security module (SELinux, AppArmor, Landlock or a BPF LSM) probably refused it.",
            null, "Look for a denial in the security module's log (the kernel log or the audit log).");
    }

    private static bool IsDescendant(int pid, int ancestor)
    {
        for (int p = pid, hops = 0; p > 1 && hops < 4096; hops++)
        {
            if (p == ancestor) return true;
            if (!int.TryParse(Field(Status(p.ToString(CultureInfo.InvariantCulture)), "PPid"), NumberStyles.None, CultureInfo.InvariantCulture, out p)) return false;
        }
        return false;
    }

    private static Dictionary<string, string>? Status(string pid)
    {
        string? text = ReadFile($"/proc/{pid}/status");
        if (text is null) return null;
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string line in text.Split('\n'))
        {
            int colon = line.IndexOf(':');
            if (colon > 0) fields[line[..colon]] = line[(colon + 1)..].Trim();
        }
        return fields;
    }

    private static string? Field(Dictionary<string, string>? status, string key) => status is not null && status.TryGetValue(key, out var v) ? v : null;

    private static ulong Caps(Dictionary<string, string> status, string key) =>
        ulong.TryParse(Field(status, key), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong v) ? v : 0;

    // "Uid:	1000	1000	1000	1000" (real, effective, saved, filesystem).
    private static uint[] Ids(Dictionary<string, string> status, string key) =>
        (Field(status, key) ?? "").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
            .Select(s => uint.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out uint v) ? v : uint.MaxValue).ToArray();

    private static string? ReadFile(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

    private static string? LinkTarget(string path)
    {
        try { return new FileInfo(path).LinkTarget; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }
}
