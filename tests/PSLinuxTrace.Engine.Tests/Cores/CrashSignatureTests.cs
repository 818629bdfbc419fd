using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Cores;

/// <summary>
/// CoreDump.Signature on real kernel cores: one crash from two runs (other pids, other ASLR bases) is one
/// signature; another crash site is another; its parts are what readelf, nm, gdb and sha256sum say.
/// </summary>
public class CrashSignatureTests
{
    private static CoreDump Read(string core, CoreDumpOptions? options = null) => new CoreDumpReader(NullLogger.Instance).Read(core, options);

    private static readonly Regex Format = new(@"^SIG[A-Z0-9]+(\|([0-9a-f]+|[^ |]+)\+0x[0-9a-f]+ \S+){1,5}$");

    private static (string BuildId, ulong Address, string Name)[] Tokens(string signature) =>
        signature.Split('|').Skip(1).Select(t =>
        {
            var m = Regex.Match(t, @"^(\S+)\+0x([0-9a-f]+) (\S+)$");
            Assert.True(m.Success, $"token '{t}'");
            return (m.Groups[1].Value, Convert.ToUInt64(m.Groups[2].Value, 16), m.Groups[3].Value);
        }).ToArray();

    private static ulong LoadBias(CoreDump core, string path) => core.BuildIds.Single(b => b.Path == path).LoadBias;

    [PrivilegedTheory("a kernel core needs RLIMIT_CORE and core_pattern")]
    [InlineData("segv", 0)]
    [InlineData("abort", 3)]
    public void OneCrashFromTwoRunsHasOneSignature(string mode, int threads)
    {
        var (exe, firstPath) = CoreFixtures.Kernel(mode, threads);
        var first = Read(firstPath);
        var second = Read(CoreFixtures.Kernel(mode, threads, run: 1).Core);
        Assert.NotEqual(first.Pid, second.Pid);
        // ASLR placed the program and libc elsewhere the second time (randomize_va_space is 2 here and in CI).
        Assert.NotEqual(LoadBias(first, exe), LoadBias(second, exe));
        string libc = first.BuildIds.Single(b => Path.GetFileName(b.Path).StartsWith("libc.so")).Path;
        Assert.NotEqual(LoadBias(first, libc), LoadBias(second, libc));
        Assert.NotNull(first.Signature);
        Assert.Matches(Format, first.Signature);
        Assert.Equal(first.Signature, second.Signature);
        Assert.Equal(first.SignatureHash, second.SignatureHash);
        Assert.Equal(CrashSignature.FrameCount, Tokens(first.Signature).Length);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void AnotherCrashSiteHasAnotherSignature()
    {
        var segv = Read(CoreFixtures.Kernel("segv", 0).Core);
        var inHandler = Read(CoreFixtures.Kernel("signal", 0).Core);
        var abort = Read(CoreFixtures.Kernel("abort", 3).Core);
        Assert.Equal("SIGSEGV", segv.Signal);
        Assert.Equal("SIGSEGV", inHandler.Signal);
        Assert.Equal(3, new[] { segv.Signature, inHandler.Signature, abort.Signature }.Distinct().Count());
        Assert.Equal(3, new[] { segv.SignatureHash, inHandler.SignatureHash, abort.SignatureHash }.Distinct().Count());
        // The fault in the SIGUSR1 handler: the handler first, the trampoline left out, then what the signal interrupted.
        var tokens = Tokens(inHandler.Signature!);
        var names = tokens.Select(t => t.Name).ToArray();
        Assert.Equal("pslt_handler", names[0]);
        // gdb's "<signal handler called>" frame, by its pc (nm of libc's debug file names it __restore_rt).
        var (exe, corePath) = CoreFixtures.Kernel("signal", 0);
        string bt = Tool.Check("gdb", "-nx", "-batch", "-iex", "set debuginfod enabled off", "-ex", "bt", exe, corePath);
        Assert.Matches(@"(?m)^#1\s+<signal handler called>", bt);
        var trampoline = inHandler.CrashingThread!.Frames[1];
        // gdb's frame 2 is our frame 2: the frame the signal interrupted.
        Assert.Equal(inHandler.CrashingThread.Frames[2].Symbol, Regex.Match(bt, @"(?m)^#2\s+(?:0x[0-9a-f]+ in )?(\S+) \(").Groups[1].Value);
        ulong offset = trampoline.InstructionPointer - LoadBias(inHandler, trampoline.ModulePath!);
        Assert.DoesNotContain(tokens, t => t.Address == offset);
        Assert.Equal(inHandler.CrashingThread.Frames[2].Symbol, names[1]);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void AbortSignatureStartsWhereTheProgramCalledAbortAsReadelfNmAndGdbSay()
    {
        var (exe, corePath) = CoreFixtures.Kernel("abort", 3);
        var core = Read(corePath);
        Assert.StartsWith("SIGABRT|", core.Signature);
        var tokens = Tokens(core.Signature!);

        // Names: gdb's frames of the crashing thread after the last of the dying ones, down to main (gdb stops there).
        var gdb = CoreFixtures.GdbBacktraces(exe, corePath)[core.Pid].Select(f => f.Name).ToList();
        int lastDying = gdb.FindLastIndex(n => CrashSignature.DyingFrames.Contains(n));
        Assert.True(lastDying >= 1, $"gdb shows no abort machinery: {string.Join(", ", gdb)}");
        var gdbKept = gdb.Skip(lastDying + 1).ToList();
        Assert.Equal(gdbKept, tokens.Select(t => t.Name).Take(gdbKept.Count));
        Assert.Equal(new[] { "pslt_crash_here", "main" }, gdbKept);

        // Build-id: readelf -n of the executable; address: inside the function per nm -S, whatever the ASLR base.
        string buildId = Regex.Match(Tool.Check("readelf", "-n", exe), @"Build ID: ([0-9a-f]+)").Groups[1].Value;
        foreach (var (id, address, name) in tokens.Take(2))
        {
            Assert.Equal(buildId, id);
            var sym = Regex.Match(Tool.Check("nm", "-S", exe), $@"(?m)^([0-9a-f]+) ([0-9a-f]+) [Tt] {name}$");
            ulong start = Convert.ToUInt64(sym.Groups[1].Value, 16), size = Convert.ToUInt64(sym.Groups[2].Value, 16);
            Assert.InRange(address, start + 1, start + size); // a return address: after the call, inside the caller
        }
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void SignatureHashIsTheSha256OfTheSignature()
    {
        var core = Read(CoreFixtures.Kernel("segv", 0).Core);
        var r = Tool.Run("sh", ["-c", "printf %s \"$0\" | sha256sum", core.Signature!]);
        Assert.Equal(r.StdOut[..16], core.SignatureHash);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void NoBacktraceGivesTheSameSignature()
    {
        var corePath = CoreFixtures.Kernel("abort", 3).Core;
        var quick = Read(corePath, new CoreDumpOptions { Backtraces = false });
        Assert.All(quick.Threads, t => Assert.Empty(t.Frames));
        Assert.Equal(Read(corePath).Signature, quick.Signature);
    }

    [PrivilegedFact("gcore attaches with ptrace")]
    public void CoreWithoutACrashHasNoSignature()
    {
        var core = Read(CoreFixtures.Gcore(2).Core);
        Assert.Equal("Gdb", core.Producer);
        Assert.False(CrashSignature.CrashSignals.Contains(core.Signal ?? "")); // the SIGSTOP gcore stopped it with, if any
        Assert.Null(core.Signature);
        Assert.Null(core.SignatureHash);
    }
}
