using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using PSLinuxTrace.Engine.Syscalls;

namespace PSLinuxTrace.Completion;

/// <summary>Tab completion for Start-SyscallTrace -Syscall: system call names and strace's %classes.</summary>
public sealed class SyscallNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        string word = (wordToComplete ?? "").Trim('\'', '"');
        var arch = SyscallArchitectureX64.Instance;
        return SyscallClasses.ClassNames.Concat(arch.AllNames.OrderBy(n => n, StringComparer.Ordinal))
            .Where(n => n.StartsWith(word, StringComparison.OrdinalIgnoreCase))
            .Select(n => new CompletionResult(n, n, CompletionResultType.ParameterValue, n.StartsWith('%') ? $"strace class {n}" : $"{n} ({arch.Number(n)})"));
    }
}
