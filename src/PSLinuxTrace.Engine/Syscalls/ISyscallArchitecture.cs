namespace PSLinuxTrace.Engine.Syscalls;

/// <summary>
/// What the tracer needs to know about one architecture's system calls: names and numbers, strace's
/// classes and the argument decoder. x86_64 today (<see cref="SyscallArchitectureX64"/>); arm64 adds a
/// second implementation (its own table; the generic decoders stay shared).
/// </summary>
public interface ISyscallArchitecture
{
    /// <summary>AUDIT_ARCH_* value (what seccomp_data.arch and ptrace_syscall_info.arch hold).</summary>
    uint AuditArch { get; }
    int MaxNumber { get; }
    string Name(long number);
    /// <summary>The number of a name, or -1.</summary>
    int Number(string name);
    IEnumerable<string> AllNames { get; }
    /// <summary>Names in a strace class (%file, %network, %process, %memory, %signal, %desc, %ipc, %creds), or null when unknown.</summary>
    IReadOnlyCollection<string>? Class(string className);
}

/// <summary>x86_64: the kernel's syscall_64.tbl.</summary>
public sealed class SyscallArchitectureX64 : ISyscallArchitecture
{
    public static SyscallArchitectureX64 Instance { get; } = new();
    public uint AuditArch => 0xC000003E; // AUDIT_ARCH_X86_64 = EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
    public int MaxNumber => SyscallTable.MaxNumber;
    public string Name(long number) => SyscallTable.Name(number);
    public int Number(string name) => SyscallTable.Number(name);
    public IEnumerable<string> AllNames => SyscallTable.AllNames;
    public IReadOnlyCollection<string>? Class(string className) => SyscallClasses.Get(className, this);
}

/// <summary>strace's -e trace=%class sets (the common ones), by name, restricted to what the architecture has.</summary>
public static class SyscallClasses
{
    private static readonly Dictionary<string, string[]> Sets = new(StringComparer.OrdinalIgnoreCase)
    {
        ["%file"] = ["open", "openat", "openat2", "creat", "stat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2",
            "execve", "execveat", "chdir", "chmod", "fchmodat", "fchmodat2", "chown", "lchown", "fchownat", "link", "linkat", "unlink", "unlinkat",
            "symlink", "symlinkat", "readlink", "readlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "mknod", "mknodat",
            "truncate", "utime", "utimes", "utimensat", "futimesat", "statfs", "getxattr", "lgetxattr", "setxattr", "lsetxattr", "listxattr",
            "llistxattr", "removexattr", "lremovexattr", "chroot", "pivot_root", "mount", "umount2", "swapon", "swapoff", "acct", "quotactl",
            "name_to_handle_at", "inotify_add_watch", "fanotify_mark", "uselib", "getcwd", "open_tree", "move_mount", "mount_setattr"],
        ["%network"] = ["socket", "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername", "sendto",
            "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "setsockopt", "getsockopt"],
        ["%process"] = ["clone", "clone3", "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "kill", "tkill",
            "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open", "pidfd_send_signal", "unshare", "setns"],
        ["%memory"] = ["brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mlock", "mlock2", "munlock", "mlockall", "munlockall",
            "mincore", "msync", "remap_file_pages", "mbind", "get_mempolicy", "set_mempolicy", "migrate_pages", "move_pages", "pkey_mprotect",
            "process_madvise", "memfd_secret", "map_shadow_stack", "mseal", "shmat", "shmdt"],
        ["%signal"] = ["kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigpending", "rt_sigsuspend", "rt_sigtimedwait",
            "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigreturn", "sigaltstack", "pause", "signalfd", "signalfd4", "pidfd_send_signal"],
        ["%ipc"] = ["msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semctl", "semtimedop", "shmget", "shmat", "shmctl", "shmdt"],
        ["%desc"] = ["read", "write", "open", "close", "fstat", "poll", "lseek", "mmap", "ioctl", "pread64", "pwrite64", "readv", "writev",
            "pipe", "pipe2", "select", "pselect6", "dup", "dup2", "dup3", "sendfile", "fcntl", "flock", "fsync", "fdatasync", "ftruncate",
            "getdents", "getdents64", "fchdir", "fchmod", "fchown", "fstatfs", "openat", "openat2", "newfstatat", "statx", "eventfd", "eventfd2",
            "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "timerfd_create", "timerfd_settime",
            "timerfd_gettime", "signalfd", "signalfd4", "inotify_init", "inotify_init1", "memfd_create", "copy_file_range", "splice", "tee",
            "preadv", "pwritev", "preadv2", "pwritev2", "close_range", "faccessat", "faccessat2", "readlinkat", "mkdirat", "unlinkat", "fchownat",
            "fchmodat", "renameat", "renameat2", "linkat", "symlinkat", "execveat", "fallocate", "fadvise64", "readahead", "ppoll", "io_uring_enter"],
        ["%creds"] = ["getuid", "geteuid", "getgid", "getegid", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
            "getresuid", "getresgid", "setfsuid", "setfsgid", "getgroups", "setgroups", "capget", "capset", "prctl"],
    };

    public static IEnumerable<string> ClassNames => Sets.Keys;

    public static IReadOnlyCollection<string>? Get(string className, ISyscallArchitecture arch) =>
        Sets.TryGetValue(className, out var names) ? names.Where(n => arch.Number(n) >= 0).ToArray() : null;
}
