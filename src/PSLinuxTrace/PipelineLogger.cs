using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace PSLinuxTrace;

/// <summary>
/// The ILogger the engine writes to from any thread. Messages wait in a queue until the cmdlet drains
/// them on the pipeline thread, where WriteVerbose/WriteDebug/WriteWarning are allowed.
/// </summary>
internal sealed class PipelineLogger : ILogger
{
    private readonly ConcurrentQueue<(LogLevel Level, string Message)> _queue = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        string message = formatter(state, exception);
        if (exception is not null) message += $" ({exception.Message})";
        _queue.Enqueue((logLevel, message));
    }

    public bool TryDequeue(out (LogLevel Level, string Message) entry) => _queue.TryDequeue(out entry);
}
