using System.Buffers.Binary;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Wire;

/// <summary>
/// Writes frames to the client from any thread, in batches. A writer only queues (a trace event is
/// queued as the object itself): a flusher thread wakes on the first item after a write, waits
/// <see cref="Coalesce"/> for more, then encodes them all and writes them at once. So the tracer thread,
/// on whose speed the tracee waits at every stop, never encodes or writes, and a busy trace costs one
/// pipe write and one wake-up of the client per batch, not per event (a wake-up across the two vCPUs of
/// these VMs costs 55-105 µs). Writers block while <see cref="MaxPending"/> items wait, so a slow client
/// slows the tracer (and with it the tracee) instead of memory growing.
/// </summary>
internal sealed class FrameWriter : IDisposable
{
    private static readonly TimeSpan Coalesce = TimeSpan.FromMilliseconds(2);
    private const int MaxPending = 16384;

    private readonly Stream _output;
    private readonly object _lock = new();
    private readonly Thread _flusher;
    private List<(FrameKind Kind, byte[]? Payload, TraceEvent? Event)> _pending = new();
    private List<(FrameKind Kind, byte[]? Payload, TraceEvent? Event)> _spare = new();
    private readonly MemoryStream _batch = new();
    private bool _closed;
    private bool _broken;

    public FrameWriter(Stream output)
    {
        _output = output;
        _flusher = new Thread(FlushLoop) { IsBackground = true, Name = "PSLinuxTrace tracer output" };
        _flusher.Start();
    }

    public void Write(FrameKind kind, ReadOnlySpan<byte> payload) => Enqueue((kind, payload.ToArray(), null));

    /// <summary>Queues a trace event, encoded later on the flusher thread.</summary>
    public void Write(TraceEvent e) => Enqueue((FrameKind.Event, null, e));

    private void Enqueue((FrameKind, byte[]?, TraceEvent?) item)
    {
        lock (_lock)
        {
            while (_pending.Count >= MaxPending && !_broken && !_closed) Monitor.Wait(_lock);
            if (_broken || _closed) return;
            _pending.Add(item);
            if (_pending.Count == 1) Monitor.PulseAll(_lock);
        }
    }

    /// <summary>Writes what is pending and stops the flusher; frames written later are dropped.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _closed = true;
            Monitor.PulseAll(_lock);
        }
        _flusher.Join();
    }

    private void FlushLoop()
    {
        while (true)
        {
            List<(FrameKind Kind, byte[]? Payload, TraceEvent? Event)> batch;
            lock (_lock)
            {
                while (_pending.Count == 0 && !_closed) Monitor.Wait(_lock);
                if (_pending.Count == 0) return; // closed, nothing left
                if (!_closed) Monitor.Wait(_lock, Coalesce); // let more items join this write
                batch = _pending;
                _pending = _spare;
                _spare = batch;
                Monitor.PulseAll(_lock); // writers blocked on a full queue may go on
            }
            _batch.SetLength(0);
            foreach (var (kind, payload, e) in batch) Append(kind, payload ?? TraceEventCodec.Encode(e!));
            batch.Clear();
            try
            {
                if (!_broken)
                {
                    _output.Write(_batch.GetBuffer(), 0, (int)_batch.Length);
                    _output.Flush();
                }
            }
            catch (IOException)
            {
                lock (_lock)
                {
                    _broken = true;
                    Monitor.PulseAll(_lock);
                }
            }
        }
    }

    private void Append(FrameKind kind, byte[] payload)
    {
        Span<byte> header = stackalloc byte[5];
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)(payload.Length + 1));
        header[4] = (byte)kind;
        _batch.Write(header);
        _batch.Write(payload);
    }
}
