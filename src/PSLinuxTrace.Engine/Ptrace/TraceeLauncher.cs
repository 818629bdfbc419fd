using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Ptrace;

/// <summary>
/// Starts a program so that a tracer can seize it before its execve: the child is a /bin/sh that changes
/// to the working directory, stops itself with SIGSTOP and then execs the program (an absolute path, so
/// the shell makes exactly one execve; posix_spawn has no chdir in glibc 2.36's public API). After <see cref="SpawnStopped"/> returns, the caller PTRACE_SEIZEs the pid and sends
/// SIGCONT; the next syscall the child makes is the execve of the program.
/// Call it on the tracer thread: the child belongs to the thread that spawned it.
/// </summary>
public static class TraceeLauncher
{
    private const string Shell = "/bin/sh";
    // $1 is the directory (passed as an argument, so no quoting can go wrong), $0 the program.
    private const string StopThenExec = "cd -- \"$1\" || exit 126; shift; kill -STOP $$; exec \"$0\" \"$@\"";
    // The same, first made to die with its parent thread: setpriv(1) sets PR_SET_PDEATHSIG to SIGKILL, which
    // execve keeps (prctl(2)), then execs a shell that stops itself as above. For a tracer without
    // PTRACE_O_EXITKILL (the eBPF engine), so that a launched program dies with a pwsh killed by SIGKILL.
    private const string SetPriv = "/usr/bin/setpriv";
    private const string DieWithParentThenStopThenExec =
        "cd -- \"$1\" || exit 126; shift; exec " + SetPriv + " --pdeathsig KILL -- " + Shell + " -c 'kill -STOP $$; exec \"$0\" \"$@\"' \"$0\" \"$@\"";

    /// <summary>
    /// Resolves a program the way a shell would to an absolute path: a name with a '/' relative to
    /// <paramref name="workingDirectory"/>, one without looked up in PATH (executable files only).
    /// </summary>
    public static string ResolveProgram(string program, string? workingDirectory = null)
    {
        string cwd = workingDirectory ?? Environment.CurrentDirectory;
        if (program.Contains('/'))
        {
            string full = Path.GetFullPath(program, cwd);
            if (!File.Exists(full)) throw new FileNotFoundException($"The program '{program}' does not exist ({full}).", full);
            return full;
        }
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':'))
        {
            // An empty PATH entry means the current directory (execvp(3)).
            string candidate = Path.GetFullPath(Path.Combine(dir.Length == 0 ? "." : dir, program), cwd);
            if (File.Exists(candidate) && IsExecutable(candidate)) return candidate;
        }
        throw new FileNotFoundException($"The program '{program}' was not found in PATH.", program);
    }

    /// <summary>
    /// The name a launched program has once its execve is done, for the events before it (the child is
    /// still the launcher shell then): the kernel sets comm to the file name of the path given to execve,
    /// cut to TASK_COMM_LEN - 1 = 15 bytes (fs/exec.c, begin_new_exec).
    /// </summary>
    public static string CommAfterExec(string absoluteProgramPath)
    {
        var name = System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(absoluteProgramPath));
        return System.Text.Encoding.UTF8.GetString(name, 0, Math.Min(name.Length, 15));
    }

    private static bool IsExecutable(string path) =>
        !OperatingSystem.IsLinux() || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

    /// <summary>
    /// Spawns the stopped shell in <paramref name="workingDirectory"/> (default: this process's);
    /// returns its pid once it is in the SIGSTOP group-stop. With <paramref name="dieWithParent"/> (where
    /// setpriv exists) the program is killed when the calling thread dies: call it from a thread that lives
    /// as long as the program may run.
    /// </summary>
    public static int SpawnStopped(string absoluteProgramPath, IReadOnlyList<string> arguments,
        string? stdinPath = null, string? stdoutPath = null, string? stderrPath = null, string? workingDirectory = null,
        bool dieWithParent = false)
    {
        string cwd = Path.GetFullPath(workingDirectory ?? Environment.CurrentDirectory);
        if (!Directory.Exists(cwd)) throw new DirectoryNotFoundException($"The working directory '{cwd}' does not exist.");
        string script = dieWithParent && File.Exists(SetPriv) ? DieWithParentThenStopThenExec : StopThenExec;
        var argv = new List<string>(arguments.Count + 5) { "sh", "-c", script, absoluteProgramPath, cwd };
        argv.AddRange(arguments);
        var envp = new List<string>();
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
            envp.Add($"{e.Key}={e.Value}");

        int pid = LibC.Spawn(Shell, argv, envp, stdinPath, stdoutPath, stderrPath);
        while (true)
        {
            int r = LibC.waitpid(pid, out int status, LibC.WUNTRACED | LibC.__WNOTHREAD);
            if (r < 0 && Errno.Last == Errno.EINTR) continue;
            if (r < 0) throw Errno.ToException(Errno.Last, "waitpid", pid);
            if (LibC.WIFSTOPPED(status)) return pid;
            throw new LinuxTraceException($"The launcher shell for '{absoluteProgramPath}' exited before it could be traced (status 0x{status:x}).");
        }
    }
}
