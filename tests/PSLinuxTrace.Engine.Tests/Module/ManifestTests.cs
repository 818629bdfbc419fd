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
        var types = typeof(LinuxTraceException).Assembly.GetExportedTypes().Select(t => t.FullName).ToHashSet();
        // Views also select the Deserialized.<Type> of each type, so objects from remoting and jobs show the same.
        static string Real(string name) => name.StartsWith("Deserialized.", StringComparison.Ordinal) ? name["Deserialized.".Length..] : name;
        foreach (string file in listed)
        {
            var doc = XDocument.Load(Path.Combine(ModuleAssembly.ModuleDir, file));
            var names = doc.Descendants("TypeName").Select(e => Real(e.Value.Trim())).ToList();
            Assert.NotEmpty(names);
            foreach (string n in names)
                Assert.True(types.Contains(n), $"{file} names type {n}, which the engine does not export");
            // A property a view names but the type lacks shows as a silently empty column in pwsh.
            foreach (var view in doc.Descendants("View"))
            {
                var viewTypes = view.Descendants("TypeName").Select(e => typeof(LinuxTraceException).Assembly.GetType(Real(e.Value.Trim()))!).ToList();
                foreach (string prop in view.Descendants("PropertyName").Select(e => e.Value.Trim()))
                    Assert.True(viewTypes.All(t => t.GetProperty(prop) is not null),
                        $"{file}, view {view.Element("Name")?.Value}: property {prop} is not on {string.Join(", ", viewTypes.Select(t => t.Name))}");
            }
        }
    }

    private static string Repo() => Infrastructure.Repo.Root;
}
