using System.Xml.Linq;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Module;

/// <summary>The module folder `dotnet build` assembles is complete and consistent with its cmdlets.</summary>
public class ManifestTests
{
    [Fact]
    public void ModuleFolderHoldsManifestAssembliesFormatsAndHelp()
    {
        Assert.True(File.Exists(ModuleAssembly.ManifestPath));
        Assert.True(File.Exists(Path.Combine(ModuleAssembly.ModuleDir, ModuleAssembly.ManifestValue("RootModule")!)));
        Assert.True(File.Exists(Path.Combine(ModuleAssembly.ModuleDir, "PSLinuxTrace.Engine.dll")));
        Assert.True(File.Exists(Path.Combine(ModuleAssembly.ModuleDir, "Microsoft.Extensions.Logging.Abstractions.dll")));
        Assert.True(File.Exists(Path.Combine(ModuleAssembly.ModuleDir, "en-US", "PSLinuxTrace.dll-Help.xml")));
        Assert.True(File.Exists(Path.Combine(ModuleAssembly.ModuleDir, "en-US", "about_PSLinuxTrace.help.txt")));
        // pwsh supplies System.Management.Automation; shipping the reference assembly would break loading.
        Assert.False(File.Exists(Path.Combine(ModuleAssembly.ModuleDir, "System.Management.Automation.dll")));
    }

    [Fact]
    public void ManifestTargetsPowerShell74CoreWithExplicitExports()
    {
        Assert.Equal("7.4", ModuleAssembly.ManifestValue("PowerShellVersion"));
        Assert.Equal(["Core"], ModuleAssembly.ManifestList("CompatiblePSEditions"));
        var exported = ModuleAssembly.ManifestList("CmdletsToExport");
        Assert.DoesNotContain(exported, e => e.Contains('*'));
        Assert.Equal(ModuleAssembly.Cmdlets.Select(c => c.Name).Order(StringComparer.Ordinal), exported.Order(StringComparer.Ordinal));
        Assert.Empty(ModuleAssembly.ManifestList("FunctionsToExport"));
        string text = File.ReadAllText(ModuleAssembly.ManifestPath);
        foreach (string key in new[] { "Tags", "LicenseUri", "ProjectUri", "ReleaseNotes" })
            Assert.Contains(key, text);
    }

    [Fact]
    public void ModuleVersionIsTheAssemblyVersion()
    {
        string version = ModuleAssembly.ManifestValue("ModuleVersion")!;
        Assert.Equal(new Version(version), new Version(ModuleAssembly.Assembly.GetName().Version!.ToString(3)));
    }

    [Fact]
    public void EveryFormatFileIsListedWellFormedAndNamesRealTypes()
    {
        var listed = ModuleAssembly.ManifestList("FormatsToProcess");
        Assert.NotEmpty(listed);
        var onDisk = Directory.GetFiles(Path.Combine(Repo(), "module"), "*.format.ps1xml").Select(Path.GetFileName);
        Assert.Equal(onDisk.Order(StringComparer.Ordinal), listed.Order(StringComparer.Ordinal));
        foreach (string file in listed)
        {
            var doc = XDocument.Load(Path.Combine(ModuleAssembly.ModuleDir, file));
            var names = doc.Descendants("TypeName").Select(e => e.Value.Trim()).ToList();
            Assert.NotEmpty(names);
            foreach (string n in names)
                Assert.True(EngineType(n) is not null, $"{file} names type {n}, which the engine does not export");
            // What comes back from remoting and jobs (Deserialized.<Type>) shows with the same views:
            // every type a view or selection set takes, or a base type of it, is taken deserialized too.
            foreach (var list in doc.Descendants().Where(e => e.Name == "ViewSelectedBy" || e.Name == "Types"))
            {
                var inList = list.Elements("TypeName").Select(e => e.Value.Trim()).ToHashSet();
                foreach (string n in inList.Where(n => !n.StartsWith(Deserialized, StringComparison.Ordinal)))
                    Assert.True(BaseChain(EngineType(n)!).Any(t => inList.Contains(Deserialized + t.FullName)),
                        $"{file} selects {n} but not {Deserialized}{n} (or a base type's)");
            }
            // A property a view names but the type lacks shows as a silently empty column in pwsh.
            foreach (var view in doc.Descendants("View"))
            {
                var viewTypes = view.Descendants("TypeName").Select(e => e.Value.Trim())
                    .Where(n => !n.StartsWith(Deserialized, StringComparison.Ordinal)).Select(n => EngineType(n)!).ToList();
                foreach (string prop in view.Descendants("PropertyName").Select(e => e.Value.Trim()))
                    Assert.True(viewTypes.All(t => t.GetProperty(prop) is not null),
                        $"{file}, view {view.Element("Name")?.Value}: property {prop} is not on {string.Join(", ", viewTypes.Select(t => t.Name))}");
            }
        }
    }

    [Fact]
    public void EveryOutputRecordCrossesRemotingWithItsProperties()
    {
        var listed = ModuleAssembly.ManifestList("TypesToProcess");
        var onDisk = Directory.GetFiles(Path.Combine(Repo(), "module"), "*.types.ps1xml").Select(Path.GetFileName);
        Assert.Equal(onDisk.Order(StringComparer.Ordinal), listed.Order(StringComparer.Ordinal));
        var withDepth = new HashSet<string>();
        foreach (string file in listed)
        {
            var doc = XDocument.Load(Path.Combine(ModuleAssembly.ModuleDir, file));
            foreach (var type in doc.Descendants("Type"))
            {
                string name = type.Element("Name")!.Value.Trim();
                Assert.True(EngineType(name) is not null, $"{file} names type {name}, which the engine does not export");
                if (type.Descendants("NoteProperty").Any(p => p.Element("Name")?.Value == "SerializationDepth"))
                    withDepth.Add(name);
            }
        }
        // Without a depth of its own, a record nested in a remote result (a thread in a CoreDump, a frame
        // in a thread, a record in a Group-Object group) arrives as its ToString().
        var records = typeof(LinuxTraceException).Assembly.GetExportedTypes()
            .Where(t => t.Namespace == "PSLinuxTrace.Engine.Model" && t.IsClass && !typeof(System.Collections.IEnumerable).IsAssignableFrom(t));
        foreach (var t in records)
            Assert.True(BaseChain(t).Any(b => withDepth.Contains(b.FullName!)), $"{t.FullName} (or a base type) has no SerializationDepth in module/*.types.ps1xml");
    }

    private const string Deserialized = "Deserialized.";

    /// <summary>An engine type by its full name, "Deserialized." or not; null when the engine has none.</summary>
    private static Type? EngineType(string name) =>
        typeof(LinuxTraceException).Assembly.GetType(name.StartsWith(Deserialized, StringComparison.Ordinal) ? name[Deserialized.Length..] : name) is { IsVisible: true } t ? t : null;

    private static IEnumerable<Type> BaseChain(Type t)
    {
        for (Type? b = t; b is not null && b != typeof(object); b = b.BaseType) yield return b;
    }

    private static string Repo() => Infrastructure.Repo.Root;
}
