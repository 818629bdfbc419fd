using System.Reflection;
using PSLinuxTrace.Engine.Wire;
using PSLinuxTrace.Engine.Model;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Wire;

/// <summary>
/// The binary form of trace events loses nothing: every settable property of every event type, set to a
/// value other than its default, comes back equal. A property added to the model and not to the codec fails here.
/// </summary>
public sealed class TraceEventCodecTests
{
    public static TheoryData<Type> EventTypes => new() { typeof(SyscallEvent), typeof(SignalEvent), typeof(ProcessExitEvent), typeof(ProcessStartEvent) };

    [Theory]
    [MemberData(nameof(EventTypes))]
    public void EveryPropertyRoundTrips(Type type)
    {
        var original = (TraceEvent)Activator.CreateInstance(type)!;
        var settable = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.SetMethod is not null).ToList();
        int seed = 1;
        foreach (var p in settable) p.SetValue(original, Sample(p.PropertyType, seed++));
        var copy = TraceEventCodec.Decode(TraceEventCodec.Encode(original));
        Assert.IsType(type, copy);
        foreach (var p in settable)
        {
            object? a = p.GetValue(original), b = p.GetValue(copy);
            if (a is System.Collections.IEnumerable x && b is System.Collections.IEnumerable y && a is not string) Assert.Equal(x.Cast<object>(), y.Cast<object>()); // records compare by value
            else Assert.Equal(a, b);
        }
    }

    [Fact]
    public void NullsAndNegativesRoundTrip()
    {
        var e = new SyscallEvent { Name = "openat", ReturnValue = -2, Errno = "ENOENT", RawArguments = [ulong.MaxValue, unchecked((ulong)-100)], Arguments = new[] { "AT_FDCWD", "\"/é\"" } };
        var copy = (SyscallEvent)TraceEventCodec.Decode(TraceEventCodec.Encode(e));
        Assert.Equal(e.ReturnValue, copy.ReturnValue);
        Assert.Equal(e.RawArguments, copy.RawArguments);
        Assert.Equal(e.Arguments, copy.Arguments);
        var unfinished = (SyscallEvent)TraceEventCodec.Decode(TraceEventCodec.Encode(new SyscallEvent { ReturnValue = null, Errno = null }));
        Assert.Null(unfinished.ReturnValue);
        Assert.Null(unfinished.Errno);
    }

    [Fact]
    public void DamagedEventsAreBadInputFormat()
    {
        byte[] good = TraceEventCodec.Encode(new SyscallEvent { Name = "read", Arguments = new[] { "3", "\"abc\"", "3" }, Result = "3" });
        for (int cut = 0; cut < good.Length; cut++)
            Assert.Throws<BadInputFormatException>(() => TraceEventCodec.Decode(good.AsSpan(0, cut)));
        Assert.Throws<BadInputFormatException>(() => TraceEventCodec.Decode([.. good, 0]));
        Assert.Throws<BadInputFormatException>(() => TraceEventCodec.Decode([99, .. good.AsSpan(1)]));
    }

    private static object? Sample(Type t, int seed)
    {
        var u = Nullable.GetUnderlyingType(t) ?? t;
        if (u == typeof(string)) return $"s{seed}-ünïcode";
        if (u == typeof(int)) return -seed * 7;
        if (u == typeof(long)) return -seed * 1_000_000_007L;
        if (u == typeof(bool)) return true;
        if (u == typeof(DateTime)) return new DateTime(2026, 12, 1, 10, 0, seed, DateTimeKind.Utc).AddTicks(seed);
        if (u == typeof(TimeSpan)) return TimeSpan.FromTicks(123456789 + seed);
        if (u == typeof(string[])) return new[] { $"a{seed}", "", "c" };
        if (u == typeof(TraceArguments)) return new TraceArguments([$"a{seed}", "", "c"]);
        if (u == typeof(StackFrame[]))
            return new[]
            {
                new StackFrame(0, 0x7f00_0000_1234, 0x7ffd_0000_0010, "getpid", 7, "/usr/lib/libc.so.6", "Context") { File = "getpid.c", Line = 29, Column = 3, IsInlined = true },
                new StackFrame(1, ulong.MaxValue, 0, null, 0, null, "FramePointer"),
            };
        if (u == typeof(ulong[])) return new ulong[] { 1, ulong.MaxValue, (ulong)seed };
        if (u.IsEnum) return Enum.GetValues(u).GetValue(Enum.GetValues(u).Length - 1);
        throw new InvalidOperationException($"No sample for {t}: teach this test (and TraceEventCodec) the new property type.");
    }
}
