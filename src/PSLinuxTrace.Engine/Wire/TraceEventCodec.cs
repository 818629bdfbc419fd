using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Wire;

/// <summary>
/// Syscall-trace events in a compact binary form for the pipe from the tracer process: a trace makes
/// tens of thousands of them a second, and JSON cost about a third of the tracing time on both sides of
/// the pipe (bench/syscalltrace). Every settable property of every event type is written, in a fixed
/// order; a test round-trips each type with every property set, so a property added to the model and
/// not here fails there. Strings are UTF-8 with a length (-1 for null); integers are LEB128 varints.
/// </summary>
internal static class TraceEventCodec
{
    private enum Tag : byte { Syscall = 1, Signal = 2, Exit = 3, Start = 4 }

    public static bool CanEncode(object value) => value is SyscallEvent or SignalEvent or ProcessExitEvent or ProcessStartEvent;

    public static byte[] Encode(TraceEvent e)
    {
        var w = new Writer();
        switch (e)
        {
            case SyscallEvent s:
                w.Byte((byte)Tag.Syscall); Common(ref w, s);
                w.Long(s.Number); w.ULongs(s.RawArguments); w.NullableLong(s.ReturnValue); w.Bool(s.Unfinished); WriteStack(ref w, s.StackTrace);
                break;
            case SignalEvent g:
                w.Byte((byte)Tag.Signal); Common(ref w, g);
                w.String(g.Signal); w.Long(g.SignalNumber); w.String(g.Code); w.Long(g.SenderPid); w.Long(g.SenderUid); w.Bool(g.Delivered);
                break;
            case ProcessExitEvent x:
                w.Byte((byte)Tag.Exit); Common(ref w, x);
                w.NullableLong(x.ExitCode); w.String(x.Signal); w.Bool(x.CoreDumped); w.Bool(x.IsThread);
                break;
            case ProcessStartEvent p:
                w.Byte((byte)Tag.Start); Common(ref w, p);
                w.Long((int)p.Kind); w.Long(p.ParentTid); w.String(p.ExecutablePath);
                break;
            default:
                throw new InvalidOperationException($"{e.GetType().Name} has no binary form: add it to TraceEventCodec.");
        }
        return w.ToArray();
    }

    private static void WriteStack(ref Writer w, StackFrame[]? frames)
    {
        w.Long(frames?.Length ?? -1);
        foreach (var f in frames ?? [])
        {
            w.Long(f.Index); w.Long((long)f.InstructionPointer); w.Long((long)f.StackPointer); w.String(f.Symbol); w.Long((long)f.Offset);
            w.String(f.ModulePath); w.String(f.Method); w.String(f.File); w.NullableLong(f.Line); w.NullableLong(f.Column); w.Bool(f.IsInlined);
        }
    }

    private static StackFrame[]? ReadStack(ref Reader r)
    {
        long n = r.Long();
        if (n == -1) return null;
        if (n < 0 || n > r.Remaining) throw new BadInputFormatException("A trace event from the tracer process has a malformed stack.");
        var frames = new StackFrame[n];
        for (int i = 0; i < frames.Length; i++)
        {
            frames[i] = new StackFrame((int)r.Long(), (ulong)r.Long(), (ulong)r.Long(), r.String(), (ulong)r.Long(), r.String(), r.String() ?? "")
            {
                File = r.String(), Line = (int?)r.NullableLong(), Column = (int?)r.NullableLong(), IsInlined = r.Bool(),
            };
        }
        return frames;
    }

    /// <summary>The base record's properties; Name, Arguments and Result as the event shows them (set or derived).</summary>
    private static void Common(ref Writer w, TraceEvent e)
    {
        w.Long(e.Timestamp.Ticks); w.Byte((byte)e.Timestamp.Kind); w.Long(e.Pid); w.Long(e.Tid); w.String(e.ProcessName);
        w.String(e.Name); w.Strings(e.Arguments); w.String(e.Result); w.String(e.Errno); w.Long(e.Duration.Ticks);
    }

    public static TraceEvent Decode(ReadOnlySpan<byte> data)
    {
        var r = new Reader(data);
        var tag = (Tag)r.Byte();
        var ts = new DateTime(r.Long(), (DateTimeKind)r.Byte());
        int pid = (int)r.Long(), tid = (int)r.Long();
        string process = r.String() ?? "";
        string name = r.String() ?? "";
        TraceArguments arguments = r.Strings();
        string result = r.String() ?? "";
        string? errno = r.String();
        var duration = new TimeSpan(r.Long());
        TraceEvent e = tag switch
        {
            Tag.Syscall => new SyscallEvent
            {
                Number = (int)r.Long(), RawArguments = r.ULongs(), ReturnValue = r.NullableLong(), Unfinished = r.Bool(), StackTrace = ReadStack(ref r),
            },
            Tag.Signal => new SignalEvent
            {
                Signal = r.String() ?? "", SignalNumber = (int)r.Long(), Code = r.String() ?? "", SenderPid = (int)r.Long(), SenderUid = (int)r.Long(), Delivered = r.Bool(),
            },
            Tag.Exit => new ProcessExitEvent
            {
                ExitCode = (int?)r.NullableLong(), Signal = r.String(), CoreDumped = r.Bool(), IsThread = r.Bool(),
            },
            Tag.Start => new ProcessStartEvent
            {
                Kind = (ProcessStartKind)r.Long(), ParentTid = (int)r.Long(), ExecutablePath = r.String(),
            },
            _ => throw new BadInputFormatException($"The tracer process sent a trace event of unknown kind {(byte)tag}: is it from another build of the module?"),
        };
        if (!r.AtEnd) throw new BadInputFormatException($"A {tag} event from the tracer process has {r.Remaining} bytes too many: is it from another build of the module?");
        return e with
        {
            Timestamp = ts, Pid = pid, Tid = tid, ProcessName = process,
            Name = name, Arguments = arguments, Result = result, Errno = errno, Duration = duration,
        };
    }

    private struct Writer()
    {
        private readonly ArrayBufferWriter<byte> _buffer = new(256);

        public readonly void Byte(byte b) { _buffer.GetSpan(1)[0] = b; _buffer.Advance(1); }
        public readonly void Bool(bool b) => Byte(b ? (byte)1 : (byte)0);

        public readonly void Long(long v)
        {
            // Zigzag, so small negative numbers (-errno, AT_FDCWD) stay short too.
            ulong u = (ulong)((v << 1) ^ (v >> 63));
            var span = _buffer.GetSpan(10);
            int n = 0;
            while (u >= 0x80) { span[n++] = (byte)(u | 0x80); u >>= 7; }
            span[n++] = (byte)u;
            _buffer.Advance(n);
        }

        public readonly void NullableLong(long? v) { Bool(v.HasValue); if (v is { } x) Long(x); }

        public readonly void String(string? s)
        {
            if (s is null) { Long(-1); return; }
            int max = Encoding.UTF8.GetMaxByteCount(s.Length);
            Long(Encoding.UTF8.GetByteCount(s));
            int n = Encoding.UTF8.GetBytes(s, _buffer.GetSpan(max));
            _buffer.Advance(n);
        }

        public readonly void Strings(IReadOnlyList<string> a) { Long(a.Count); foreach (var s in a) String(s); }

        public readonly void ULongs(ulong[] a)
        {
            Long(a.Length);
            foreach (ulong v in a)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(_buffer.GetSpan(8), v);
                _buffer.Advance(8);
            }
        }

        public readonly byte[] ToArray() => _buffer.WrittenSpan.ToArray();
    }

    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos;

        public readonly bool AtEnd => _pos == _data.Length;
        public readonly int Remaining => _data.Length - _pos;

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n < 0 || n > _data.Length - _pos) throw new BadInputFormatException("A trace event from the tracer process is cut short.");
            var s = _data.Slice(_pos, n);
            _pos += n;
            return s;
        }

        public byte Byte() => Take(1)[0];
        public bool Bool() => Byte() != 0;

        public long Long()
        {
            ulong u = 0;
            for (int shift = 0; shift < 70; shift += 7)
            {
                byte b = Byte();
                u |= (ulong)(b & 0x7f) << shift;
                if (b < 0x80) return (long)(u >> 1) ^ -(long)(u & 1);
            }
            throw new BadInputFormatException("A trace event from the tracer process has a malformed number.");
        }

        public long? NullableLong() => Bool() ? Long() : null;

        public string? String()
        {
            long n = Long();
            if (n == -1) return null;
            if (n < 0 || n > Frames.MaxPayload) throw new BadInputFormatException("A trace event from the tracer process has a malformed string.");
            return Encoding.UTF8.GetString(Take((int)n));
        }

        public string[] Strings()
        {
            long n = Long();
            if (n < 0 || n > Remaining) throw new BadInputFormatException("A trace event from the tracer process has a malformed list.");
            var a = new string[n];
            for (int i = 0; i < a.Length; i++) a[i] = String() ?? "";
            return a;
        }

        public ulong[] ULongs()
        {
            long n = Long();
            if (n < 0 || n * 8 > Remaining) throw new BadInputFormatException("A trace event from the tracer process has a malformed list.");
            var a = new ulong[n];
            for (int i = 0; i < a.Length; i++) a[i] = BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
            return a;
        }
    }
}
