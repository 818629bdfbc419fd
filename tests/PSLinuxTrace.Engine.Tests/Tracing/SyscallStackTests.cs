using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Syscalls;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using PSLinuxTrace.Engine.Tracing;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Tracing;

/// <summary>
/// Start-SyscallTrace -StackTrace (strace -k): each system call carries the user stack that made it,
/// the same frames strace -k prints for the same program (module by module, and by name and offset
/// where both name the frame from the program's own symbols).
/// </summary>
[Collection("SyscallTracer")]
public sealed class SyscallStackTests
{
    private static string Fixture => Fixtures.Build("syscalls", "-pthread");

    [PrivilegedFact("ptrace (CAP_SYS_PTRACE)")]
    public void EverySyscallHasTheStackStraceKPrints()
    {
        var options = new SyscallTraceOptions
        {
            Filter = SyscallFilter.Parse(["getppid"], SyscallArchitectureX64.Instance), StackFrames = 64, Timeout = TimeSpan.FromMinutes(2),
        };
        var events = SyscallTracer.ReadAll(SyscallTracer.Launch(Fixture, ["spin", "3"], options, stdoutPath: "/dev/null")).OfType<SyscallEvent>().ToList();
        Assert.Equal(3, events.Count);
        var strace = StraceK(["spin", "3"]);
        Assert.Equal(3, strace.Count);
        for (int i = 0; i < events.Count; i++)
        {
            var ours = events[i].StackTrace;
            Assert.NotNull(ours);
            var theirs = strace[i];
            Assert.Equal(theirs.Select(f => f.Module), ours!.Select(f => f.ModulePath));
            for (int k = 0; k < theirs.Count; k++)
                if (theirs[k].Module == Fixture) Assert.Equal(theirs[k].Function, $"{ours[k].Symbol}+0x{ours[k].Offset:x}");
            Assert.Contains(ours, f => f.Symbol == "main");
        }
    }

    [PrivilegedFact("ptrace (CAP_SYS_PTRACE)")]
    public void WithoutTheSwitchNoStackIsTaken()
    {
        var options = new SyscallTraceOptions { Filter = SyscallFilter.Parse(["getppid"], SyscallArchitectureX64.Instance), Timeout = TimeSpan.FromMinutes(2) };
        var events = SyscallTracer.ReadAll(SyscallTracer.Launch(Fixture, ["spin", "2"], options, stdoutPath: "/dev/null")).OfType<SyscallEvent>().ToList();
        Assert.All(events, e => Assert.Null(e.StackTrace));
    }

    /// <summary>strace -f -k's stack of each getppid: per call, each frame's module and "function+0xoffset".</summary>
    private static List<List<(string Module, string Function)>> StraceK(string[] args)
    {
        string output = Path.Combine(Fixtures.ScratchDirectory, $"strace-k-{Guid.NewGuid():N}.txt");
        var r = Tool.Run("strace", ["-f", "-qq", "-k", "-e", "trace=getppid", "-e", "signal=none", "-o", output, Fixture, .. args], TimeSpan.FromMinutes(2));
        Assert.Equal(0, r.ExitCode);
        var calls = new List<List<(string, string)>>();
        foreach (string line in File.ReadLines(output))
        {
            if (line.Contains("getppid(", StringComparison.Ordinal)) { calls.Add(new()); continue; }
            var m = Regex.Match(line, @"^\s*> (\S+)\(([^)]*)\) \[0x[0-9a-f]+\]");
            if (m.Success && calls.Count > 0) calls[^1].Add((m.Groups[1].Value, m.Groups[2].Value));
        }
        File.Delete(output);
        return calls;
    }
}
