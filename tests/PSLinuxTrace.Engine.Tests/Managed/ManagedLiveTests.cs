using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Managed;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Stacks;
using PSLinuxTrace.Engine.Tests.Cores;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Managed;

/// <summary>
/// Get-ProcessStack's engine on the running .NET fixture, waiting in managed code (Thread.Sleep in Wait) that
/// native code called from managed code: the managed frames in call order among the native ones, the native
/// frames above the first managed one exactly gdb's, and a C process's stacks with no ClrMD opened.
/// </summary>
[Collection("Managed")]
public sealed class ManagedLiveTests
{
    private static ProcessStack Read(int pid)
    {
        var stacks = new List<ProcessStack>();
        var errors = new List<(int, Exception)>();
        using var reader = new ProcessStackReader(NullLogger.Instance);
        reader.Read([pid], stacks.Add, (p, ex) => errors.Add((p, ex)), CancellationToken.None);
        Assert.Empty(errors);
        return Assert.Single(stacks);
    }

    [PrivilegedFact("ptrace of a running process")]
    public void WaitingThreadShowsManagedFramesBetweenNativeOnes()
    {
        using var p = FixtureProcess.Start(DotnetFixture.Executable, "wait");
        int tid = int.Parse(p.Values["tid"]);
        // Wait until the thread sleeps (in clock_nanosleep) rather than still printing "ready".
        Assert.True(ProcessLiveness.Within(TimeSpan.FromSeconds(20), () => ProcessLiveness.ThreadState(p.Pid, tid) == 'S'));
        var stack = Read(p.Pid);
        Assert.DoesNotContain(stack.Warnings, w => w.Contains("managed frames"));
        var frames = stack.Threads.Single(t => t.Tid == tid).Frames;
        ChainAssert.InOrder(frames,
            (StackFrameKind.Managed, "PsltFixture.Program.Wait()"), (StackFrameKind.Managed, DotnetFixture.CrashChain[1]),
            (StackFrameKind.Native, DotnetFixture.InnerFunction), (StackFrameKind.Native, DotnetFixture.CallFunction),
            (StackFrameKind.Managed, DotnetFixture.CrashChain[2]), (StackFrameKind.Managed, DotnetFixture.CrashChain[3]),
            (StackFrameKind.Managed, DotnetFixture.CrashChain[4]), (StackFrameKind.Native, "__libc_start_main_impl"));
        Assert.Contains(frames, f => f.Kind == StackFrameKind.Managed && f.Symbol!.StartsWith("System.Threading.Thread.Sleep"));

        // Above the first managed frame, gdb's walk (CFI in libc and libcoreclr) is right: ours is the same there.
        int firstManaged = Array.FindIndex(frames, f => f.Kind != StackFrameKind.Native);
        var ours = frames.Take(firstManaged).Where((f, i) => i == 0 || f.InstructionPointer != frames[i - 1].InstructionPointer).Select(f => f.InstructionPointer).ToList();
        var gdb = GdbPcs(p.Pid, tid, ours.Count);
        Assert.Equal(gdb, ours);
    }

    [PrivilegedFact("ptrace of a running process")]
    public void NativeProcessOpensNoClrMd()
    {
        using var p = FixtureProcess.Start(CoreFixtures.Executable, "wait", "1");
        int before = ManagedStacks.RuntimesOpened;
        var stack = Read(p.TargetPid);
        Assert.Equal(before, ManagedStacks.RuntimesOpened);
        Assert.All(stack.Threads.SelectMany(t => t.Frames), f => Assert.Equal(StackFrameKind.Native, f.Kind));
    }

    /// <summary>The first <paramref name="count"/> pcs of gdb's bt of one thread of a live process (frame 0's from $pc).</summary>
    private static List<ulong> GdbPcs(int pid, int tid, int count)
    {
        var r = Tool.Run("gdb", ["-nx", "-batch", "-iex", "set debuginfod enabled off", "-ex", "set width 0", "-p", pid.ToString(),
            "-ex", $"thread find LWP {tid}", "-ex", "info threads", "-ex", "p/x $pc", "-ex", "bt"], TimeSpan.FromMinutes(2));
        // Select the thread by its LWP: gdb numbers threads itself.
        var num = Regex.Match(r.StdOut, $@"Thread (\d+) has target id '[^']*LWP {tid}\)'");
        Assert.True(num.Success, r.StdOut + r.StdErr);
        r = Tool.Run("gdb", ["-nx", "-batch", "-iex", "set debuginfod enabled off", "-ex", "set width 0", "-p", pid.ToString(),
            "-ex", $"thread {num.Groups[1].Value}", "-ex", "p/x $pc", "-ex", "bt"], TimeSpan.FromMinutes(2));
        var pcs = new List<ulong> { Convert.ToUInt64(Regex.Match(r.StdOut, @"\$1 = 0x([0-9a-f]+)").Groups[1].Value, 16) };
        foreach (Match m in Regex.Matches(r.StdOut, @"^#(\d+)\s+0x([0-9a-f]+) in ", RegexOptions.Multiline))
            if (m.Groups[1].Value != "0") pcs.Add(Convert.ToUInt64(m.Groups[2].Value, 16));
        return pcs.Take(count).ToList();
    }
}
