using PSLinuxTrace.Engine.Access;
using System.Globalization;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Access;

/// <summary>AccessDiagnosis against the refusals this machine really makes (pid 1 holds a capability we lack).</summary>
public sealed class AccessDiagnosisTests
{
    private static ulong Caps(int pid, string key) =>
        ulong.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(key + ":", StringComparison.Ordinal))[(key.Length + 1)..].Trim(), NumberStyles.HexNumber);

    [PrivilegedFact("a pid 1 that holds a capability this process lacks")]
    public void ARefusedReadOfPid1NamesTheCapabilityItHoldsAndWeLack()
    {
        ulong extra = Caps(1, "CapPrm") & ~Caps(Environment.ProcessId, "CapEff");
        Assert.True(extra != 0, "pid 1 of these machines holds a capability this process lacks");
        // The kernel really refuses it: the same error as from a plain open.
        Assert.Throws<UnauthorizedAccessException>(() => File.ReadAllText("/proc/1/maps"));
        var ex = Assert.Throws<TargetPermissionDeniedException>(() => ProcFs.ReadMaps(1));
        foreach (string cap in AccessDiagnosis.CapabilityNamesOf(extra))
        {
            Assert.Contains(cap, ex.Message);
            Assert.Contains(cap, ex.MissingCapability);
        }
        Assert.Equal(Errno.EACCES, ex.Errno);
        Assert.DoesNotContain("run as root", ex.Message + ex.RecommendedAction, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("PermissionDenied", ex.ErrorId);
    }

    [Fact]
    public void TracingOurOwnProcessSaysAProcessCannotTraceItself()
    {
        var ex = AccessDiagnosis.Explain(Environment.ProcessId, "ptrace(PTRACE_SEIZE)", Errno.EPERM);
        Assert.Contains("cannot trace itself", ex.Message);
        Assert.Null(ex.MissingCapability);
        Assert.Contains("another PowerShell session", ex.RecommendedAction);
    }

    [Fact]
    public void CapabilityNamesFollowTheKernelsNumbering()
    {
        // include/uapi/linux/capability.h, checked against capsh (libcap2-bin).
        Assert.Equal("CAP_SYS_PTRACE", AccessDiagnosis.CapabilityName(19));
        Assert.Equal("CAP_SYS_RESOURCE", AccessDiagnosis.CapabilityName(24));
        Assert.Equal("CAP_BPF", AccessDiagnosis.CapabilityName(39));
        Assert.Equal(new[] { "CAP_CHOWN", "CAP_KILL" }, AccessDiagnosis.CapabilityNamesOf(1 | 1 << 5));
        for (int bit = 0; bit <= 40; bit++)
        {
            var r = Tool.Run("capsh", [$"--decode={1UL << bit:x}"]);
            Assert.EndsWith("=" + AccessDiagnosis.CapabilityName(bit).ToLowerInvariant(), r.StdOut.Trim());
        }
    }
}
