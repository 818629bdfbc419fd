using System.Reflection;
using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Tests.Infrastructure;

namespace PSLinuxTrace.Engine.Tests.Module;

/// <summary>A cmdlet as its attributes declare it, read without loading PowerShell.</summary>
public sealed record CmdletInfo(string Name, Type Type, IReadOnlyList<ParameterInfo> Parameters, IReadOnlyList<string> ParameterSets, string? DefaultParameterSet, bool SupportsShouldProcess = false);

public sealed record ParameterInfo(string Name, string TypeName, IReadOnlyList<string> Aliases, IReadOnlyList<(string Set, bool Mandatory, int Position, bool Pipeline, bool ByPropertyName)> Sets);

/// <summary>
/// The assembled module folder (out/PSLinuxTrace) and its cmdlets, read with MetadataLoadContext so the
/// tests need no PowerShell runtime (none exists on the build machines).
/// </summary>
public static partial class ModuleAssembly
{
    public static string ModuleDir { get; } = Repo.Path("out", "PSLinuxTrace");
    public static string ManifestPath => Path.Combine(ModuleDir, "PSLinuxTrace.psd1");

    private static readonly Lazy<(MetadataLoadContext Context, Assembly Assembly)> Loaded = new(() =>
    {
        string sma = Path.Combine(AppContext.BaseDirectory, "System.Management.Automation.dll");
        var paths = Directory.GetFiles(ModuleDir, "*.dll")
            .Concat(Directory.GetFiles(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory(), "*.dll"))
            .Append(sma);
        var ctx = new MetadataLoadContext(new PathAssemblyResolver(paths));
        return (ctx, ctx.LoadFromAssemblyPath(Path.Combine(ModuleDir, "PSLinuxTrace.dll")));
    });

    public static Assembly Assembly => Loaded.Value.Assembly;

    public static IReadOnlyList<CmdletInfo> Cmdlets { get; } = LoadCmdlets();

    private static List<CmdletInfo> LoadCmdlets()
    {
        var result = new List<CmdletInfo>();
        foreach (Type t in Assembly.GetTypes())
        {
            var cmdlet = t.GetCustomAttributesData().FirstOrDefault(a => a.AttributeType.FullName == "System.Management.Automation.CmdletAttribute");
            if (cmdlet is null) continue;
            string name = $"{cmdlet.ConstructorArguments[0].Value}-{cmdlet.ConstructorArguments[1].Value}";
            string? defaultSet = cmdlet.NamedArguments.FirstOrDefault(n => n.MemberName == "DefaultParameterSetName").TypedValue.Value as string;
            var parameters = new List<ParameterInfo>();
            foreach (PropertyInfo p in t.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                var attrs = p.GetCustomAttributesData();
                var sets = attrs.Where(a => a.AttributeType.FullName == "System.Management.Automation.ParameterAttribute")
                    .Select(a =>
                    {
                        T Named<T>(string n, T dflt) => a.NamedArguments.Where(x => x.MemberName == n).Select(x => (T)x.TypedValue.Value!).DefaultIfEmpty(dflt).First();
                        return (Named("ParameterSetName", "__AllParameterSets"), Named("Mandatory", false), Named("Position", int.MinValue),
                            Named("ValueFromPipeline", false), Named("ValueFromPipelineByPropertyName", false));
                    }).ToList();
                if (sets.Count == 0) continue;
                var aliases = attrs.Where(a => a.AttributeType.FullName == "System.Management.Automation.AliasAttribute")
                    .SelectMany(a => ((IEnumerable<CustomAttributeTypedArgument>)a.ConstructorArguments[0].Value!).Select(v => (string)v.Value!))
                    .ToList();
                parameters.Add(new ParameterInfo(p.Name, p.PropertyType.Name, aliases, sets));
            }
            var setNames = parameters.SelectMany(p => p.Sets.Select(s => s.Set)).Where(s => s != "__AllParameterSets").Distinct().ToList();
            // As in PowerShell: a DefaultParameterSetName that no parameter names is still a set (of the all-sets parameters).
            if (setNames.Count > 0 && defaultSet is not null && !setNames.Contains(defaultSet)) setNames.Insert(0, defaultSet);
            bool shouldProcess = cmdlet.NamedArguments.Any(n => n.MemberName == "SupportsShouldProcess" && n.TypedValue.Value is true);
            result.Add(new CmdletInfo(name, t, parameters, setNames, defaultSet, shouldProcess));
        }
        return result.OrderBy(c => c.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>A string array value of the manifest, such as CmdletsToExport.</summary>
    public static List<string> ManifestList(string key)
    {
        string text = File.ReadAllText(ManifestPath);
        var m = Regex.Match(text, key + @"\s*=\s*@\(([^)]*)\)", RegexOptions.Singleline);
        if (!m.Success) return [];
        return QuotedRegex().Matches(m.Groups[1].Value).Select(x => x.Groups[1].Value).ToList();
    }

    public static string? ManifestValue(string key)
    {
        var m = Regex.Match(File.ReadAllText(ManifestPath), key + @"\s*=\s*'([^']*)'");
        return m.Success ? m.Groups[1].Value : null;
    }

    [GeneratedRegex("'([^']*)'")]
    private static partial Regex QuotedRegex();
}
