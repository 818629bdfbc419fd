using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Exec;

/// <summary>
/// Joins each exec's entry record with its exit record and lets the events go in time order: an
/// event leaves once its exit was seen, or once it is due (<c>exitWait</c> after its entry arrived)
/// with its result unknown; the events behind it wait for it, so the stream keeps the order in which
/// the execs were made. An exit can stay away: its record was lost, or the caller was killed mid-exec.
/// </summary>
internal sealed class ExecEventQueue(TimeSpan exitWait)
{
    private sealed class Entry(ExecEvent e, TimeSpan arrived)
    {
        public ExecEvent Event = e;
        public readonly TimeSpan Arrived = arrived;
        public bool Done;
    }

    private readonly List<Entry> _byTime = new();
    private readonly Dictionary<int, Entry> _awaitingExit = new();

    public int Count => _byTime.Count;

    /// <summary>A new exec (its entry record), seen at <paramref name="now"/>.</summary>
    public void Enter(ExecEvent e, TimeSpan now)
    {
        // An earlier exec by this thread whose exit never came is over: it goes with its result unknown.
        if (_awaitingExit.Remove(e.Tid, out var earlier)) earlier.Done = true;
        var entry = new Entry(e, now);
        // Records of different CPUs can reach the ring slightly out of timestamp order.
        int at = _byTime.Count;
        while (at > 0 && _byTime[at - 1].Event.Timestamp > e.Timestamp) at--;
        _byTime.Insert(at, entry);
        _awaitingExit[e.Tid] = entry;
    }

    /// <summary>The exit record of the exec by <paramref name="tid"/>; false when no exec waits for it (it began before the watch, or was filtered out).</summary>
    public bool Exit(int pid, int tid, long ret)
    {
        if (!_awaitingExit.Remove(tid, out var entry))
        {
            // A successful exec by a non-leader thread returns in the leader's tid (de_thread), so fall back to the pid.
            int key = ret == 0 ? _awaitingExit.FirstOrDefault(kv => kv.Value.Event.Pid == pid).Key : 0;
            if (key == 0 || !_awaitingExit.Remove(key, out entry)) return false;
        }
        int errno = ret < 0 ? (int)-ret : 0;
        entry.Event = entry.Event with { Result = errno == 0 ? "0" : Errno.Name(errno), ErrorCode = errno };
        entry.Done = true;
        return true;
    }

    /// <summary>Moves the events that may go now into <paramref name="ready"/>, oldest first; <paramref name="all"/> (the end of the watch) moves every one.</summary>
    public void Release(TimeSpan now, bool all, List<ExecEvent> ready)
    {
        int n = 0;
        while (n < _byTime.Count && (all || _byTime[n].Done || now - _byTime[n].Arrived >= exitWait)) n++;
        for (int i = 0; i < n; i++)
        {
            Entry e = _byTime[i];
            if (!e.Done && _awaitingExit.TryGetValue(e.Event.Tid, out var waiting) && waiting == e) _awaitingExit.Remove(e.Event.Tid);
            ready.Add(e.Event);
        }
        _byTime.RemoveRange(0, n);
    }
}
