using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Module;

/// <summary>The design card's rule: Interop/ is the only place with native calls, unsafe code and Marshal.</summary>
public sealed class ConventionTests
{
    [Fact]
    public void NativeCodeLivesOnlyInInterop()
    {
        var forbidden = new Regex(@"\bunsafe\b|\[(LibraryImport|DllImport)\b|\bMarshal\.|\bfixed\s*\(", RegexOptions.Compiled);
        string src = Repo.Path("src");
        var offenders = Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") &&
                        !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}") &&
                        !f.Contains($"{Path.DirectorySeparatorChar}Interop{Path.DirectorySeparatorChar}"))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, i, line)))
            .Where(x => !x.line.TrimStart().StartsWith("//", StringComparison.Ordinal) && forbidden.IsMatch(x.line))
            .Select(x => $"{Path.GetRelativePath(src, x.f)}:{x.i + 1}: {x.line.Trim()}")
            .ToList();
        Assert.True(offenders.Count == 0, "native code outside Interop/:\n" + string.Join("\n", offenders));
    }
}

/// <summary>
/// The design card's arrows: Model depends on nothing of ours, Interop on nothing but the engine's exceptions
/// (and Access/, which explains a refused access for the one errno check), and no two folders depend on
/// each other, directly or through others. Dependencies are read from the sources: `using` directives of
/// the engine's namespaces and names qualified with a folder (`Interop.LibC`).
/// </summary>
public sealed class FolderDependencyTests
{
    private static readonly string Engine = Repo.Path("src", "PSLinuxTrace.Engine");

    private static Dictionary<string, HashSet<string>> Dependencies()
    {
        var folders = Directory.GetDirectories(Engine).Select(Path.GetFileName).Where(f => f is not ("bin" or "obj")).Select(f => f!).ToList();
        var qualified = new Regex(@"(?<![\w.])(?:PSLinuxTrace\.Engine\.)?(" + string.Join('|', folders) + @")\.[A-Z]", RegexOptions.Compiled);
        var usings = new Regex(@"^\s*using\s+(?:static\s+)?(?:\w+\s*=\s*)?PSLinuxTrace\.Engine\.(\w+)", RegexOptions.Compiled | RegexOptions.Multiline);
        var comments = new Regex(@"//.*?$|/\*.*?\*/|""(?:\\.|[^""\\])*""", RegexOptions.Compiled | RegexOptions.Multiline | RegexOptions.Singleline);
        var result = folders.ToDictionary(f => f, _ => new HashSet<string>());
        foreach (string folder in folders)
            foreach (string file in Directory.EnumerateFiles(Path.Combine(Engine, folder), "*.cs", SearchOption.AllDirectories))
            {
                string code = comments.Replace(File.ReadAllText(file), "");
                foreach (Match m in usings.Matches(code)) result[folder].Add(m.Groups[1].Value);
                foreach (Match m in qualified.Matches(code)) result[folder].Add(m.Groups[1].Value);
                result[folder].Remove(folder);
            }
        return result;
    }

    [Fact]
    public void ModelDependsOnNothingOfOursAndInteropOnlyOnTheErrnoExplanation()
    {
        var deps = Dependencies();
        Assert.True(deps["Model"].Count == 0, "Model/ uses " + string.Join(", ", deps["Model"]));
        Assert.True(deps["Access"].Count == 0, "Access/ uses " + string.Join(", ", deps["Access"]));
        Assert.True(deps["Interop"].SetEquals(["Access"]) || deps["Interop"].Count == 0, "Interop/ uses " + string.Join(", ", deps["Interop"]));
    }

    [Fact]
    public void NoTwoFoldersDependOnEachOther()
    {
        var deps = Dependencies();
        var state = new Dictionary<string, int>(); // 1: on the path, 2: done
        var path = new Stack<string>();
        string? Visit(string f)
        {
            if (state.GetValueOrDefault(f) == 2) return null;
            if (state.GetValueOrDefault(f) == 1) return string.Join(" -> ", path.Reverse().SkipWhile(p => p != f).Append(f));
            state[f] = 1;
            path.Push(f);
            foreach (string d in deps.GetValueOrDefault(f, []).Order())
                if (deps.ContainsKey(d) && Visit(d) is { } cycle) return cycle;
            path.Pop();
            state[f] = 2;
            return null;
        }
        foreach (string f in deps.Keys.Order())
        {
            string? cycle = Visit(f);
            Assert.True(cycle is null, $"a cycle between folders: {cycle}");
        }
    }
}
