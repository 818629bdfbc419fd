using PSLinuxTrace.Engine.Ptrace;
using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Snapshot;

/// <summary>
/// Runs one piece of work on several threads at once: the calling thread and <c>count - 1</c> threads of its
/// own, which take the CPU mask the caller has when not pinned (a thread inherits its creator's mask, and
/// the tracer thread is pinned to the target's CPU while the target is stopped: threads made then, the thread
/// pool's included, would all share that one CPU). The first failure stops nothing by itself (the work checks
/// <c>stop</c>) but is rethrown once every thread has ended; a real error is preferred over a cancellation.
/// </summary>
internal static class Workers
{
    /// <summary>How many threads the copying and scanning use: one per CPU, at most <paramref name="max"/>.</summary>
    public static int Count(int max) => Math.Clamp(Environment.ProcessorCount, 1, max);

    /// <summary>
    /// Runs <paramref name="work"/>(isCallingThread) on <paramref name="count"/> threads; <paramref name="stop"/> is
    /// cancelled when one of them fails. <paramref name="waiting"/> runs every 50 ms on the calling thread once its own
    /// share is done and others still run (progress).
    /// </summary>
    public static void Run(int count, Action<bool> work, CancellationTokenSource stop, Action? waiting = null)
    {
        var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        ulong[]? mask = CpuPin.UnpinnedMask;
        void Guarded(Action<bool> body, bool caller)
        {
            try { body(caller); }
            catch (Exception ex)
            {
                failures.Enqueue(ex);
                try { stop.Cancel(); } catch (ObjectDisposedException) { }
            }
        }
        var threads = new Thread[Math.Max(0, count - 1)];
        for (int i = 0; i < threads.Length; i++)
        {
            threads[i] = new Thread(() =>
            {
                if (mask is not null) ThreadAffinity.Set(mask);
                Guarded(work, false);
            }) { IsBackground = true, Name = "PSLinuxTrace snapshot worker" };
            threads[i].Start();
        }
        Guarded(work, true);
        foreach (var t in threads)
            while (!t.Join(50))
                if (!stop.IsCancellationRequested && waiting is not null) Guarded(_ => waiting(), true);
        if (failures.TryDequeue(out var first))
        {
            var failure = failures.Prepend(first).FirstOrDefault(e => e is not OperationCanceledException) ?? first;
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }
    }
}
