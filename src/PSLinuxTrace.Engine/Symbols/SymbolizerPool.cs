using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace PSLinuxTrace.Engine.Symbols;

/// <summary>
/// One idle <see cref="Symbolizer"/> kept between commands, so that a second Get-ProcessStack in the same
/// session does not parse libc, ld.so and the program again: in a warm pwsh that parse was most of a
/// capture's 10 ms. Each rent has a symbolizer of its own (they are not thread-safe); a returned one is
/// kept if none is, else disposed. Its caches key files by path, modification time and size, so a
/// file replaced on disk is parsed afresh.
/// </summary>
public static class SymbolizerPool
{
    private static readonly object Lock = new();
    private static (Symbolizer Symbolizer, ForwardingLogger Log)? _idle;

    /// <summary>A symbolizer whose log lines go to <paramref name="log"/> until the lease is disposed.</summary>
    public static Lease Rent(ILogger log)
    {
        (Symbolizer, ForwardingLogger)? taken;
        lock (Lock)
        {
            taken = _idle;
            _idle = null;
        }
        var (symbolizer, forward) = taken ?? New();
        forward.Target = log;
        return new Lease(symbolizer, forward);
    }

    private static (Symbolizer, ForwardingLogger) New()
    {
        var forward = new ForwardingLogger();
        return (new Symbolizer(forward), forward);
    }

    private static void Return(Symbolizer symbolizer, ForwardingLogger log)
    {
        log.Target = NullLogger.Instance;
        lock (Lock)
        {
            if (_idle is null)
            {
                _idle = (symbolizer, log);
                return;
            }
        }
        symbolizer.Dispose();
    }

    /// <summary>A rented symbolizer; Dispose gives it back.</summary>
    public sealed class Lease(Symbolizer symbolizer, ForwardingLogger log) : IDisposable
    {
        private bool _returned;
        public Symbolizer Symbolizer { get; } = symbolizer;

        public void Dispose()
        {
            if (_returned) return;
            _returned = true;
            Return(Symbolizer, log);
        }
    }

    /// <summary>An ILogger that writes to whichever logger the current renter gave.</summary>
    public sealed class ForwardingLogger : ILogger
    {
        internal ILogger Target { get; set; } = NullLogger.Instance;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => Target.BeginScope(state);
        public bool IsEnabled(LogLevel logLevel) => Target.IsEnabled(logLevel);
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Target.Log(logLevel, eventId, state, exception, formatter);
    }
}
