namespace PSLinuxTrace.Engine.Host;

/// <summary>
/// Writes frames to the client from any thread, in batches: a flusher thread wakes on the first frame
/// after a write, waits <see cref="Coalesce"/> for more, and writes them all at once. A busy trace then
/// costs one pipe write and one wake-up of the client per batch, not per event (a wake-up across the
/// two vCPUs of these VMs costs 55-105 µs). Writers block while <see cref="MaxPending"/> bytes wait, so
/// a slow client slows the tracer (and, through its bounded channel, the tracee) instead of memory growing.
/// </summary>
internal sealed class FrameWriter : IDisposable
{
    private static readonly TimeSpan Coalesce = TimeSpan.FromMilliseconds(2);
    private const int MaxPending = 1 << 20;

    private readonly Stream _output;
    private readonly object _lock = new();
    private readonly Thread _flusher;
    private MemoryStream _pending = new();
    private MemoryStream _spare = new();
    private bool _closed;
    private bool _broken;

    public FrameWriter(Stream output)
    {
        _output = output;
        _flusher = new Thread(FlushLoop) { IsBackground = true, Name = "PSLinuxTrace tracer output" };
        _flusher.Start();
    }

    /// <summary>False once the client stopped reading (the pipe broke): nothing more reaches it.</summary>
    public bool ClientListening => !_broken;

    public void Write(FrameKind kind, ReadOnlySpan<byte> payload)
    {
        byte[] frame = Frames.Encode(kind, payload);
        lock (_lock)
        {
            while (_pending.Length > MaxPending && !_broken && !_closed) Monitor.Wait(_lock);
            if (_broken || _closed) return;
            bool wasEmpty = _pending.Length == 0;
            _pending.Write(frame);
            if (wasEmpty) Monitor.PulseAll(_lock);
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
            MemoryStream batch;
            lock (_lock)
            {
                while (_pending.Length == 0 && !_closed) Monitor.Wait(_lock);
                if (_pending.Length == 0) return; // closed, nothing left
                if (!_closed) Monitor.Wait(_lock, Coalesce); // let more frames join this write
                batch = _pending;
                _pending = _spare;
                _spare = batch;
                Monitor.PulseAll(_lock); // writers blocked on a full buffer may go on
            }
            try
            {
                if (!_broken)
                {
                    _output.Write(batch.GetBuffer(), 0, (int)batch.Length);
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
            batch.SetLength(0);
        }
    }
}
