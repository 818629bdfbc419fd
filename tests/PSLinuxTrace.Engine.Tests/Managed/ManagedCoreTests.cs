using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Managed;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Tests.Cores;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Managed;

/// <summary>
/// Read-CoreDump on a kernel core of the .NET fixture crashing in native code called from managed code called
/// from native code called from managed code: one frame list with both kinds, in the fixture's call order,
/// native frames named as gdb names their pcs, managed ones with the PDB's lines. A core of a C program
/// opens no ClrMD at all.
/// </summary>
[Collection("Managed")]
public sealed class ManagedCoreTests
{
    private static CoreDump ReadFixtureCore()
    {
        using var reader = new CoreDumpReader(NullLogger.Instance, null);
        return reader.Read(DotnetFixture.Core);
    }

    [PrivilegedFact("a kernel core needs core_pattern")]
    public void CrashingThreadInterleavesManagedAndNativeFramesInCallOrder()
    {
        var dump = ReadFixtureCore();
        Assert.DoesNotContain(dump.Warnings, w => w.Contains("managed frames"));
        var frames = Assert.IsType<CoreThread>(dump.CrashingThread).Frames;
        ChainAssert.InOrder(frames,
            (StackFrameKind.Native, DotnetFixture.CrashFunction), (StackFrameKind.Managed, DotnetFixture.CrashChain[0]),
            (StackFrameKind.Managed, DotnetFixture.CrashChain[1]), (StackFrameKind.Native, DotnetFixture.InnerFunction),
            (StackFrameKind.Native, DotnetFixture.CallFunction), (StackFrameKind.Managed, DotnetFixture.CrashChain[2]),
            (StackFrameKind.Managed, DotnetFixture.CrashChain[3]), (StackFrameKind.Managed, DotnetFixture.CrashChain[4]),
            (StackFrameKind.Native, "__libc_start_main_impl"));
        // Nothing is lost or reordered: frame 0 is the crash, stack pointers grow, managed frames name their assembly.
        Assert.Equal(DotnetFixture.CrashFunction, frames[0].Symbol);
        Assert.Equal(Enumerable.Range(0, frames.Length), frames.Select(f => f.Index));
        Assert.All(frames.Where(f => f.Kind == StackFrameKind.Managed && f.Symbol!.StartsWith("PsltFixture.")),
            f => Assert.EndsWith("PsltFixture.dll", f.ModulePath));
    }

    [PrivilegedFact("a kernel core needs core_pattern")]
    public void NativeFramesAreTheOnesGdbNamesAtTheirPcs()
    {
        var dump = ReadFixtureCore();
        var frames = dump.CrashingThread!.Frames;
        var gdb = CoreFixtures.GdbBacktraces(DotnetFixture.Executable, DotnetFixture.Core)[dump.CrashingThread.Tid];
        // gdb's own walk stops making sense at the first JIT frame; its frame 0 is the crash.
        Assert.Equal(gdb[0].Name, frames[0].Symbol);
        var native = frames.Where(f => f.Kind == StackFrameKind.Native && !f.IsInlined && f.Method != "TailCall" && f.Symbol is not null).ToList();
        var lookups = native.Select(f => f.Index == 0 ? f.InstructionPointer : f.InstructionPointer - 1).ToList();
        var starts = GdbSymbolStarts(lookups);
        // The same function: gdb's symbol for the pc starts where ours does (names differ for aliases, as
        // __libc_start_main and its DWARF name __libc_start_main_impl).
        for (int i = 0; i < native.Count; i++)
            Assert.True(starts[i] is null || starts[i] == native[i].InstructionPointer - native[i].Offset,
                $"frame #{native[i].Index} at 0x{native[i].InstructionPointer:x}: ours {native[i].Symbol}+0x{native[i].Offset:x}, gdb's starts at 0x{starts[i]:x}");
        Assert.Contains(starts, s => s is not null);
    }

    [PrivilegedFact("a kernel core needs core_pattern")]
    public void ManagedFramesCarryILOffsetsAndThePortablePdbsLines()
    {
        var frames = ReadFixtureCore().CrashingThread!.Frames;
        string source = Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(DotnetFixture.Executable)!)!, "Program.cs");
        var lines = File.ReadAllLines(source);
        // Each managed method's frame is at the line of its call to the next one, found in the fixture's source.
        (string Method, string Call)[] calls =
            [("PsltFixture.Program.Crash()", "NativeCrash()"), ("PsltFixture.Program.OnCallback(Int32)", "Crash();"),
             ("PsltFixture.Program.CallNative(Int32)", "NativeCall(&OnCallback"), ("PsltFixture.Program.Outer(Int32)", "=> CallNative(mode)"),
             ("PsltFixture.Program.Main(System.String[])", "Outer(mode);")];
        foreach (var (method, call) in calls)
        {
            var f = Assert.Single(frames, x => x.Symbol == method);
            Assert.Equal(source, f.File);
            Assert.NotNull(f.ILOffset);
            Assert.Contains(call, lines[f.Line!.Value - 1]);
        }
    }

    [PrivilegedFact("a kernel core needs core_pattern")]
    public void CoreOfANativeProgramOpensNoClrMd()
    {
        var (_, core) = CoreFixtures.Kernel("segv", 0);
        int before = ManagedStacks.RuntimesOpened;
        using var reader = new CoreDumpReader(NullLogger.Instance, null);
        var dump = reader.Read(core);
        Assert.Equal(before, ManagedStacks.RuntimesOpened);
        Assert.All(dump.Threads.SelectMany(t => t.Frames), f => Assert.Equal(StackFrameKind.Native, f.Kind));
        Assert.NotEmpty(dump.CrashingThread!.Frames);
    }

    /// <summary>gdb's `info symbol` of each address in the fixture's core: where its symbol starts, or null where gdb has none.</summary>
    private static List<ulong?> GdbSymbolStarts(List<ulong> list)
    {
        var args = new List<string> { "-nx", "-batch", "-iex", "set debuginfod enabled off" };
        foreach (ulong a in list) { args.Add("-ex"); args.Add($"info symbol 0x{a:x}"); }
        args.Add(DotnetFixture.Executable);
        args.Add(DotnetFixture.Core);
        var r = Tool.Run("gdb", args, TimeSpan.FromMinutes(2));
        var answers = r.StdOut.Split('\n').Where(l => l.StartsWith("No symbol matches") || Regex.IsMatch(l, @"^\S+ (\+ \d+ )?in section")).ToList();
        Assert.Equal(list.Count, answers.Count);
        return answers.Select((l, i) => Regex.Match(l, @"^\S+ (?:\+ (\d+) )?in section") is { Success: true } m
            ? list[i] - (m.Groups[1].Success ? ulong.Parse(m.Groups[1].Value) : 0) : (ulong?)null).ToList();
    }
}

/// <summary>Asserts that a frame list holds the given (kind, name) frames in this order, others allowed between.</summary>
internal static class ChainAssert
{
    public static void InOrder(StackFrame[] frames, params (StackFrameKind Kind, string Name)[] chain)
    {
        int at = 0;
        foreach (var (kind, name) in chain)
        {
            int found = Array.FindIndex(frames, at, f => f.Kind == kind && f.Symbol == name);
            Assert.True(found >= 0, $"no {kind} frame {name} after #{at} in:\n{string.Join('\n', frames.Select(f => f.ToString()))}");
            at = found + 1;
        }
    }
}
