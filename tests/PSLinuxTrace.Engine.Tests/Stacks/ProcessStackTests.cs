using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Stacks;
using PSLinuxTrace.Engine.Tests.Cores;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Stacks;

/// <summary>
/// Live backtraces (Get-ProcessStack's engine) against gdb's `thread apply all bt` on the same running
/// process, with 1, 8 and 64 threads: the same threads, the same frames (every pc gdb prints, every
/// function of the fixture itself), and the process left running untraced after a short pause.
/// </summary>
[Collection("SyscallTracer")]
public sealed class ProcessStackTests
{
    private static List<ProcessStack> Read(params int[] pids)
    {
        var stacks = new List<ProcessStack>();
        var errors = new List<(int, Exception)>();
        using var reader = new ProcessStackReader(NullLogger.Instance);
        reader.Read(pids, stacks.Add, (pid, ex) => errors.Add((pid, ex)), CancellationToken.None);
        Assert.Empty(errors);
        return stacks;
    }

    [PrivilegedTheory("ptrace of a running process")]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(63)]
    public void EveryThreadsFramesAreGdbs(int workers)
    {
        using var p = FixtureProcess.Start(CoreFixtures.Executable, "wait", workers.ToString());
        int pid = p.TargetPid;
        Assert.True(ProcessLiveness.Within(TimeSpan.FromSeconds(20), () =>
            ProcFs.ListThreads(pid).All(t => File.ReadAllText($"/proc/{pid}/task/{t}/wchan") is "do_sys_poll" or "pipe_read" or "sigsuspend" or "anon_pipe_read" || ProcessLiveness.ThreadState(pid, t) == 'S')));
        var stack = Assert.Single(Read(pid));
        var gdb = GdbBacktraces(pid);

        Assert.Equal(workers + 1, stack.Threads.Length);
        Assert.Equal(gdb.Keys.Order(), stack.Threads.Select(t => t.Tid).Order());
        Assert.Equal(pid, stack.Threads[0].Tid); // the leader first, as in a core
        foreach (var thread in stack.Threads)
        {
            // One entry per pc: gdb shows an inlined call as frames sharing their pc with the real one.
            var expected = gdb[thread.Tid].Aggregate(new List<(ulong Pc, string Function)>(), (list, f) =>
            {
                if (list.Count == 0 || list[^1].Pc != f.Pc) list.Add(f);
                else list[^1] = f; // the real (outermost) function of the pc names it
                return list;
            });
            var ours = thread.Frames.Where((f, i) => i == 0 || f.InstructionPointer != thread.Frames[i - 1].InstructionPointer).ToList();
            Assert.Equal(expected.Select(f => f.Pc), ours.Select(f => f.InstructionPointer));
            for (int i = 0; i < expected.Count; i++)
            {
                // The fixture's own functions, which gdb names from the same symbols.
                string function = expected[i].Function;
                if (function.StartsWith("pslt_", StringComparison.Ordinal) || function is "main" or "worker")
                    Assert.Equal(function, ours[i].Symbol);
            }
        }
        Assert.Contains(stack.Threads[0].Frames, f => f.Symbol == "pslt_wait_here");
        Assert.All(stack.Threads.Skip(1), t => Assert.Contains(t.Frames, f => f.Symbol == "pslt_worker_wait"));
        Assert.True(stack.PausedFor > TimeSpan.Zero && stack.PausedFor < stack.Duration);
        AssertRunningUntraced(p);
    }

    [PrivilegedFact("ptrace of a running process")]
    public void ADotNetProcessItsOwnJitMemoryDoesNotHideItsNativeFrames()
    {
        // This test host: its runtime maps JIT code twice (/memfd:doublemapper) all over the address
        // space, across libc's range; a blocked thread's top frame is still libc's, as gdb says.
        var stack = Assert.Single(Read(Environment.ProcessId));
        Assert.True(stack.Threads.Length > 3);
        Assert.DoesNotContain(stack.Threads.SelectMany(t => t.Frames), f => f.ModulePath?.Contains("doublemapper", StringComparison.Ordinal) == true && f.Symbol is not null);
        Assert.Contains(stack.Threads, t => t.Frames.Length > 0 && t.Frames[0].ModulePath?.EndsWith("libc.so.6", StringComparison.Ordinal) == true && t.Frames[0].Symbol is not null);
        Assert.All(stack.Threads, t => Assert.NotNull(t.Name));
    }

    [PrivilegedFact("ptrace of a running process")]
    public void AProcessThatMapsItsOwnLibrariesAgainIsStillNamedRight()
    {
        // A symbolizer in a process maps the ELF files it reads (libc among them): that process's libc is
        // then two images of one path, here the stray one mapped below the loaded one, as it can come out.
        // Its frames must still be named from the image that was loaded.
        string libc = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .First(f => f.Length >= 6 && f[5].EndsWith("/libc.so.6", StringComparison.Ordinal))[5];
        int fd = Interop.LibC.open(libc, Interop.LibC.O_RDONLY | Interop.LibC.O_CLOEXEC, 0);
        Assert.True(fd >= 0);
        const nint Low = 0x10000000; // below every loaded library: MAP_FIXED_NOREPLACE = 0x100000
        nint stray = Interop.LibC.mmap(Low, 1 << 20, Interop.LibC.PROT_READ, 2 /* MAP_PRIVATE */ | 0x100000, fd, 0);
        Interop.LibC.close(fd);
        Assert.Equal(Low, stray);
        try
        {
            var self = Assert.Single(Read(Environment.ProcessId));
            var libcTops = self.Threads.Select(t => t.Frames[0]).Where(f => f.ModulePath == libc).ToList();
            Assert.NotEmpty(libcTops);
            Assert.All(libcTops, f => Assert.NotNull(f.Symbol));
        }
        finally
        {
            Interop.LibC.munmap(stray, 1 << 20);
        }
    }

    [PrivilegedFact("ptrace of a running process")]
    public void ProcessesThatCannotBeReadAreErrorsForThemAloneAndTheOthersAreRead()
    {
        using var p = FixtureProcess.Start(CoreFixtures.Executable, "wait", "1");
        var stacks = new List<ProcessStack>();
        var errors = new Dictionary<int, Exception>();
        using var reader = new ProcessStackReader(NullLogger.Instance);
        int dead = PSLinuxTrace.Engine.Tests.Procfs.ProcFsTests.DeadPid();
        reader.Read([dead, 2, p.TargetPid], stacks.Add, (pid, ex) => errors[pid] = ex, CancellationToken.None);
        Assert.Equal(p.TargetPid, Assert.Single(stacks).Pid);
        Assert.IsType<ProcessNotFoundException>(errors[dead]);
        Assert.IsType<UnsupportedFeatureException>(errors[2]); // kthreadd: no user stack
        AssertRunningUntraced(p);
    }

    private static void AssertRunningUntraced(FixtureProcess p)
    {
        int pid = p.TargetPid;
        Assert.False(p.Process.HasExited);
        Assert.Equal(0, ProcFs.ReadStatus(pid).TracerPid);
        Assert.All(ProcFs.ListThreads(pid), tid => Assert.DoesNotContain(ProcessLiveness.ThreadState(pid, tid), "tTZ"));
    }

    /// <summary>
    /// gdb's `thread apply all bt` of a running process, past main (as we and eu-stack unwind) and with every
    /// frame's address: per thread, each frame's pc and function.
    /// </summary>
    private static Dictionary<int, List<(ulong Pc, string Function)>> GdbBacktraces(int pid)
    {
        var r = Tool.Run("gdb", ["-nx", "-batch", "-iex", "set debuginfod enabled off", "-iex", "set print frame-arguments none",
            "-iex", "set backtrace past-main on", "-iex", "set print frame-info location-and-address",
            "-p", pid.ToString(), "-ex", "thread apply all bt"], TimeSpan.FromMinutes(2));
        var result = new Dictionary<int, List<(ulong, string)>>();
        List<(ulong, string)>? current = null;
        foreach (string line in r.StdOut.Split('\n'))
        {
            var thread = Regex.Match(line, @"^Thread \d+ \(Thread 0x[0-9a-f]+ \(LWP (\d+)\)");
            if (thread.Success) { result[int.Parse(thread.Groups[1].Value)] = current = new(); continue; }
            var frame = Regex.Match(line, @"^#(\d+)\s+(0x[0-9a-f]+) in (\S+)");
            if (frame.Success && current is not null)
                current.Add((Convert.ToUInt64(frame.Groups[2].Value[2..], 16), frame.Groups[3].Value));
        }
        Assert.True(result.Count > 0, r.StdOut + r.StdErr);
        return result;
    }
}
