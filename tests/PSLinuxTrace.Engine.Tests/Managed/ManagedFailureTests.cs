using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Managed;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Managed;

/// <summary>
/// What goes wrong with managed frames is never fatal: a .NET core read with a SysRoot whose runtime has no
/// DAC next to it, or a file there that is no DAC, gives a warning and the native frames, as before.
/// </summary>
[Collection("Managed")]
public sealed class ManagedFailureTests
{
    /// <summary>A SysRoot holding the target's libcoreclr.so (the same file: the same build-id) and, when given, <paramref name="dac"/> as the DAC.</summary>
    private static string SysRootWithRuntime(string name, byte[]? dac)
    {
        using var reader = new CoreDumpReader(NullLogger.Instance, null);
        var dump = reader.Read(DotnetFixture.Core, new CoreDumpOptions { Backtraces = false });
        string coreclr = dump.Mappings.First(m => m.Path?.EndsWith("/" + ManagedStacks.RuntimeFileName) == true).Path!;
        string root = Path.Combine(Fixtures.ScratchDirectory, name);
        string copy = Path.Join(root, coreclr);
        Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
        File.Copy(coreclr, copy, overwrite: true);
        if (dac is not null) File.WriteAllBytes(Path.Join(Path.GetDirectoryName(copy), ManagedStacks.DacFileName), dac);
        return root;
    }

    private static CoreDump ReadWith(string sysRoot)
    {
        using var reader = new CoreDumpReader(NullLogger.Instance, null);
        return reader.Read(DotnetFixture.Core, new CoreDumpOptions { SysRoot = sysRoot });
    }

    [PrivilegedFact("a kernel core needs core_pattern")]
    public void NoDacNextToTheRuntimeWarnsAndKeepsTheNativeFrames()
    {
        var dump = ReadWith(SysRootWithRuntime("sysroot-no-dac", null));
        Assert.Contains(dump.Warnings, w => w.Contains(ManagedStacks.DacFileName + " is missing") && w.Contains("managed frames are not shown"));
        var frames = dump.CrashingThread!.Frames;
        Assert.Equal(DotnetFixture.CrashFunction, frames[0].Symbol);
        Assert.All(frames, f => Assert.Equal(StackFrameKind.Native, f.Kind));
    }

    [PrivilegedFact("a kernel core needs core_pattern")]
    public void AFileThatIsNoDacWarnsAndKeepsTheNativeFrames()
    {
        var dump = ReadWith(SysRootWithRuntime("sysroot-bad-dac", "not an ELF file"u8.ToArray()));
        Assert.Contains(dump.Warnings, w => w.Contains("could not be read with") && w.Contains("managed frames are not shown"));
        var frames = dump.CrashingThread!.Frames;
        Assert.Equal(DotnetFixture.CrashFunction, frames[0].Symbol);
        Assert.All(frames, f => Assert.Equal(StackFrameKind.Native, f.Kind));
    }
}
