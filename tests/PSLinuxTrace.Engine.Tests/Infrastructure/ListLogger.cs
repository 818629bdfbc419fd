using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace PSLinuxTrace.Engine.Tests.Infrastructure;

/// <summary>A logger that keeps what the engine logs, for tests of what a user sees with -Verbose and as warnings.</summary>
public sealed class ListLogger : ILogger
{
    public ConcurrentQueue<(LogLevel Level, string Message)> Entries { get; } = new();
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Entries.Enqueue((logLevel, formatter(state, exception)));

    /// <summary>The messages at <paramref name="level"/> (every level when null).</summary>
    public List<string> Messages(LogLevel? level = null) => Entries.Where(e => level is null || e.Level == level).Select(e => e.Message).ToList();
}
