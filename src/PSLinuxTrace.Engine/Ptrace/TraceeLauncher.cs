using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Ptrace;

/// <summary>
/// Starts a program so that a tracer can seize it before its execve: the child is a /bin/sh that stops
/// itself with SIGSTOP and then execs the program (an absolute path, so the shell makes exactly one
/// execve). After <see cref="SpawnStopped"/> returns, the caller PTRACE_SEIZEs the pid and sends
/// SIGCONT; the next syscall the child makes is the execve of the program.
/// Call it on the tracer thread: the child belongs to the thread that spawned it.
/// </summary>
public static class TraceeLauncher
{
    private const string Shell = "/bin/sh";
    private const string StopThenExec = "kill -STOP $$; exec \"$0\" \"$@\"";
    // With a working directory: it comes as $1, before the program's own arguments.
    private const string ChdirStopThenExec = "cd -- \"$1\" || exit 126; shift; kill -STOP $$; exec \"$0\" \"$@\"";

    /// <summary>Resolves a program name the way a shell would (PATH lookup) to an absolute path.</summary>
    public static string ResolveProgram(string program, string? workingDirectory = null)
    {
        if (program.Contains('/'))
        {
            string full = Path.GetFullPath(program, workingDirectory ?? Environment.CurrentDirectory);
            if (!File.Exists(full)) throw new FileNotFoundException($"The program '{program}' does not exist.", full);
            return full;
        }
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, program);
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException($"The program '{program}' was not found in PATH.", program);
    }

    /// <summary>Spawns the stopped shell; returns its pid once it is in the SIGSTOP group-stop.</summary>
    public static int SpawnStopped(string absoluteProgramPath, IReadOnlyList<string> arguments,
        string? stdinPath = null, string? stdoutPath = null, string? stderrPath = null, string? workingDirectory = null)
    {
        if (workingDirectory is not null && !Directory.Exists(workingDirectory))
            throw new DirectoryNotFoundException($"The working directory '{workingDirectory}' does not exist.");
        var argv = new List<string>(arguments.Count + 5) { "sh", "-c", workingDirectory is null ? StopThenExec : ChdirStopThenExec, absoluteProgramPath };
        if (workingDirectory is not null) argv.Add(workingDirectory);
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
