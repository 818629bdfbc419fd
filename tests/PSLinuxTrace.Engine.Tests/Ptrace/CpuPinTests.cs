using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Ptrace;

/// <summary>The snapshotter pins its thread to the target's CPU only while the target is paused, and restores the mask.</summary>
public class CpuPinTests
{
    [Fact]
    public void PinsToTheTargetsLastCpuAndRestoresTheMask()
    {
        using var p = FixtureProcess.Start("/bin/sh", "-c", "echo ready; exec cat");
        // Compared once cat sleeps on its stdin: a process still running (or exec'ing) may move to the
        // other CPU between our read and ps's, as it once did in CI.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!(ProcFs.ReadComm(p.Process.Id) == "cat" && ProcFs.ReadStatus(p.Process.Id).State == 'S') && DateTime.UtcNow < deadline)
            Thread.Sleep(10);
        int cpu = CpuPin.LastCpu(p.Process.Id);
        Assert.InRange(cpu, 0, Environment.ProcessorCount - 1);
        // The same figure ps prints as PSR.
        var ps = Tool.Run("ps", new[] { "-o", "psr=", "-p", p.Process.Id.ToString() });
        Assert.Equal(cpu, int.Parse(ps.StdOut.Trim()));

        var before = ThreadAffinity.Get();
        Assert.NotNull(before);
        var pin = CpuPin.ToCpuOf(p.Process.Id, NullLogger.Instance);
        try
        {
            var pinned = ThreadAffinity.Get()!;
            Assert.Equal(1UL << (cpu % 64), pinned[cpu / 64]);
            Assert.Equal(1, pinned.Sum(w => System.Numerics.BitOperations.PopCount(w)));
            Assert.Equal(cpu, LibC.sched_getcpu());
        }
        finally
        {
            pin.Dispose();
            pin.Dispose(); // twice is harmless
        }
        Assert.Equal(before, ThreadAffinity.Get());
    }

    [Fact]
    public void AMissingProcessLeavesTheMaskAlone()
    {
        var before = ThreadAffinity.Get();
        using (CpuPin.ToCpuOf(Procfs.ProcFsTests.DeadPid(), NullLogger.Instance))
            Assert.Equal(before, ThreadAffinity.Get());
        Assert.Equal(before, ThreadAffinity.Get());
    }
}
