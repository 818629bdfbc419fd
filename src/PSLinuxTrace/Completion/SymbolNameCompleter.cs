using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Symbols;

namespace PSLinuxTrace.Completion;

/// <summary>
/// Tab completion for Get-ProcSymbol -Name: symbol names from the ELF files that the processes
/// given by -Id (else every process) map, filtered by -Path when it is given.
/// </summary>
public sealed class SymbolNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        string word = (wordToComplete ?? "").Trim('\'', '"');
        List<string> names;
        try
        {
            using var scanner = new ProcSymbolScanner(NullLogger.Instance);
            names = scanner.CompleteNames(word, Strings(fakeBoundParameters, "Path"), Ints(fakeBoundParameters, "Id"),
                maxFiles: fakeBoundParameters.Contains("Path") || fakeBoundParameters.Contains("Id") ? 64 : 16);
        }
        catch (Exception)
        {
            // Completion must never throw into the user's prompt.
            yield break;
        }
        foreach (string n in names)
            yield return new CompletionResult(n, n, CompletionResultType.ParameterValue, n);
    }

    private static string[]? Strings(IDictionary bound, string key)
    {
        if (!bound.Contains(key)) return null;
        return Flatten(bound[key]).Select(o => o?.ToString() ?? "").Where(s => s.Length > 0).ToArray();
    }

    private static int[]? Ints(IDictionary bound, string key)
    {
        if (!bound.Contains(key)) return null;
        var list = new List<int>();
        foreach (var o in Flatten(bound[key]))
            if (int.TryParse(o?.ToString(), out int v)) list.Add(v);
        return list.ToArray();
    }

    private static IEnumerable<object?> Flatten(object? value)
    {
        value = value is PSObject p ? p.BaseObject : value;
        if (value is string or null) return new[] { value };
        if (value is IEnumerable e) return e.Cast<object?>().Select(x => x is PSObject q ? q.BaseObject : x);
        return new[] { value };
    }
}
