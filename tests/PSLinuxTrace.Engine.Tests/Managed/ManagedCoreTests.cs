using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace PSLinuxTrace.Engine.Tests.Managed;

public sealed class ManagedCoreTests(ITestOutputHelper output)
{
    [PrivilegedFact("a kernel core needs core_pattern")]
    public void Explore()
    {
        var log = new ListLogger();
        using var reader = new CoreDumpReader(log, null);
        var dump = reader.Read(DotnetFixture.Core);
        foreach (var w in dump.Warnings) output.WriteLine("W " + w);
        foreach (var l in log.Messages()) output.WriteLine("L " + l);
        foreach (var t in dump.Threads)
        {
            output.WriteLine(t.ToString());
            foreach (var f in t.Frames) output.WriteLine($"  {f} sp={f.StackPointer:x} {f.Method} il={f.ILOffset}");
        }
    }
}
