using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Managed;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Symbols;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using PSLinuxTrace.Engine.Unwind;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Managed;

/// <summary>
/// Where our own walk stops in JIT code (no CFI there; here the frame-pointer slot of the innermost managed
/// frame is made unreadable to it), the interleaver resumes it from the registers of the runtime's next
/// managed frames, so the native frames called further down (pslt_native_inner, pslt_native_call) and the
/// runtime's native frames below Main still show, in the same order as on the whole stack.
/// </summary>
[Collection("Managed")]
public sealed class ManagedResumeTests
{
    /// <summary>The core's memory, less 16 bytes our unwinder may not read (ClrMD still reads the whole core).</summary>
    private sealed class HiddenBytes(IAddressSpace memory, ulong start) : IAddressSpace
    {
        public int Read(ulong address, Span<byte> buffer)
        {
            if (address + (ulong)buffer.Length > start && address < start + 16)
                return address < start ? memory.Read(address, buffer[..(int)(start - address)]) : 0;
            return memory.Read(address, buffer);
        }
    }

    [PrivilegedFact("a kernel core needs core_pattern")]
    public void WalkResumesBelowManagedFramesItCouldNotPass()
    {
        using var core = CoreFile.Open(DotnetFixture.Core);
        using var symbolizer = new Symbolizer(NullLogger.Instance, null);
        var map = symbolizer.MapModules(core.Memory, CoreModules.Layout(core));
        CoreModules.SpliceLocalFiles(core, map);
        CoreModules.SpliceManagedAssemblies(core, map, null);
        var crashed = core.Threads[0];
        var registers = CoreDumpBuilder.Registers(crashed);
        int tid = crashed.Status.Pid;
        using var managed = ManagedStacks.TryOpen("fixture", tid, map, core.Memory, new Dictionary<int, X64Registers> { [tid] = registers }, null,
            w => Assert.Fail(w), NullLogger.Instance);
        Assert.NotNull(managed);

        var whole = StackInterleaver.Backtrace(symbolizer, map, registers, tid, 256, null, managed);
        var innermost = managed.Frames(tid, registers.Rsp).First(f => f.Kind == StackFrameKind.Managed);
        var hidden = new HiddenBytes(core.Memory, innermost.Rbp!.Value);
        // Our walk alone now ends in JIT code: nothing of the fixture's native code below it.
        var alone = symbolizer.Backtrace(map, registers.ToUserRegs(), 256, hidden);
        Assert.DoesNotContain(alone, f => f.Symbol == DotnetFixture.InnerFunction);

        var resumed = StackInterleaver.Backtrace(symbolizer, map, registers, tid, 256, hidden, managed);
        ChainAssert.InOrder(resumed,
            (StackFrameKind.Native, DotnetFixture.CrashFunction), (StackFrameKind.Managed, DotnetFixture.CrashChain[1]),
            (StackFrameKind.Native, DotnetFixture.InnerFunction), (StackFrameKind.Native, DotnetFixture.CallFunction),
            (StackFrameKind.Managed, DotnetFixture.CrashChain[4]), (StackFrameKind.Native, "__libc_start_main_impl"));
        // Below the first managed frame, the resumed walk finds the same native frames as the whole one.
        Assert.Equal(Native(whole).SkipWhile(f => f.Symbol == DotnetFixture.CrashFunction), Native(resumed).SkipWhile(f => f.Symbol == DotnetFixture.CrashFunction));
    }

    private static IEnumerable<(ulong Pc, string? Symbol)> Native(StackFrame[] frames) =>
        frames.Where(f => f.Kind == StackFrameKind.Native).Select(f => (f.InstructionPointer, f.Symbol));
}
