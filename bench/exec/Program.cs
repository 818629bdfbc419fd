// Watches every exec on the machine (no filter, as Watch-Exec does by default) and counts those
// whose argv[1] is MARKER, until STOPFILE exists; then prints captured=, lost=, others=.
// Usage: ExecBench MARKER STOPFILE [BUFFERSIZE]
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Exec;
using PSLinuxTrace.Engine.Model;

string marker = args[0], stopFile = args[1];
int buffer = args.Length > 2 ? int.Parse(args[2]) : ExecWatchOptions.DefaultBufferSize;
using var watcher = ExecWatcher.Open(new ExecWatchOptions { BufferSize = buffer }, NullLogger.Instance);
var reader = watcher.Start();
Console.WriteLine("ready");
Console.Out.Flush();
long captured = 0, others = 0;
DateTime? stopAt = null;
while (stopAt is null || DateTime.UtcNow < stopAt)
{
    while (reader.TryRead(out ExecEvent? e))
    {
        if (e.Argv.Length > 1 && e.Argv[1] == marker) captured++;
        else others++;
    }
    if (stopAt is null && File.Exists(stopFile)) stopAt = DateTime.UtcNow.AddSeconds(1);
    reader.WaitToReadAsync().AsTask().Wait(100);
}
Console.WriteLine($"captured={captured} lost={watcher.LostEvents} others={others}");
